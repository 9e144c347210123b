#!/bin/sh
# The container's entry point: start Open vSwitch inside the container (its own ovsdb and
# ovs-vswitchd: the userspace datapath, or the kernel's where the host has the openvswitch
# module; reckon picks), then run the command (by default the image's CMD, a reckon command).
# With --privileged the container can create namespaces, veths and bridges; they live in the
# container's own network namespace and go with it.
set -e
if ! ovs-vsctl --timeout=5 show >/dev/null 2>&1; then
  # Quietly: ovs-ctl narrates, and complains when it cannot raise ulimits or load a module in
  # a container (harmless). Its words are kept for when it fails.
  if ! /usr/share/openvswitch/scripts/ovs-ctl start --system-id=random \
       >/var/log/openvswitch/reckon-start.log 2>&1 \
     || ! ovs-vsctl --timeout=5 show >/dev/null 2>&1; then
    cat /var/log/openvswitch/reckon-start.log >&2
    echo "reckon-entrypoint: Open vSwitch did not start (is the container --privileged?);" \
         "see /var/log/openvswitch/ovs-vswitchd.log" >&2
    exit 1
  fi
fi
exec "$@"
