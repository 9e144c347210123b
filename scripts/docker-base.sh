#!/usr/bin/env bash
# Print the name of a Debian 12 (bookworm) image for the Dockerfile's BASE, making it if need be:
#   1. debian:bookworm if the engine already has it, or can pull it from a registry;
#   2. else reckon-base:bookworm if an earlier run made it;
#   3. else it makes reckon-base:bookworm: debootstrap (minbase, from the Debian mirror apt
#      uses) into a scratch folder, then `docker import`.
# Progress goes to stderr; the one line on stdout is the image name.
set -euo pipefail
OFFICIAL=debian:bookworm
LOCAL=reckon-base:bookworm

have() { docker image inspect "$1" >/dev/null 2>&1; }

if have "$OFFICIAL"; then echo "$OFFICIAL"; exit 0; fi
if have "$LOCAL"; then echo "$LOCAL"; exit 0; fi
echo "docker-base: trying to pull $OFFICIAL" >&2
if timeout 60 docker pull -q "$OFFICIAL" >/dev/null 2>&1; then echo "$OFFICIAL"; exit 0; fi

echo "docker-base: no registry answered; building $LOCAL with debootstrap (a few minutes, once)" >&2
if ! command -v debootstrap >/dev/null 2>&1; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends debootstrap >&2
fi
# The mirror this machine's apt uses (deb822 or one-line sources), else Debian's own.
MIRROR=$( { grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}';
           grep -hs '^deb ' /etc/apt/sources.list | awk '{print $2}'; } 2>/dev/null \
         | grep -v security | head -1 || true)
MIRROR=${MIRROR:-http://deb.debian.org/debian}
root=$(mktemp -d /var/tmp/reckon-base.XXXXXX)
trap 'rm -rf "$root"' EXIT
debootstrap --variant=minbase bookworm "$root" "$MIRROR" >&2
# The same sources inside, so the Dockerfile's apt-get finds the packages.
printf 'deb %s bookworm main\ndeb %s bookworm-updates main\n' "$MIRROR" "$MIRROR" > "$root/etc/apt/sources.list"
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
tar -C "$root" -c . | docker import -c 'CMD ["/bin/bash"]' - "$LOCAL" >&2
echo "$LOCAL"
