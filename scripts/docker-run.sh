#!/usr/bin/env bash
# `docker run --rm` for reckon's image, with what reckon needs inside: --privileged (it builds
# namespaces, veths and Open vSwitch bridges in the container's own network namespace).
#   scripts/docker-run.sh [docker run options] IMAGE [command...]
# Where the engine cannot grant --privileged (an engine that itself runs in a container whose
# capabilities are bounded says "unable to apply caps"), it gives the parts of --privileged
# reckon uses instead: every capability the engine can grant, /dev/net/tun (OVS's userspace
# datapath), no seccomp or AppArmor profile, and a writable /proc/sys.
set -euo pipefail
IMAGE=${RECKON_IMAGE:-reckon:latest}
if docker run --rm --privileged --entrypoint true "$IMAGE" >/dev/null 2>&1; then
  exec docker run --rm --privileged "$@"
fi
# Capabilities this machine's bounding set lacks (bit numbers as in capability.h).
names=(CHOWN DAC_OVERRIDE DAC_READ_SEARCH FOWNER FSETID KILL SETGID SETUID SETPCAP
       LINUX_IMMUTABLE NET_BIND_SERVICE NET_BROADCAST NET_ADMIN NET_RAW IPC_LOCK IPC_OWNER
       SYS_MODULE SYS_RAWIO SYS_CHROOT SYS_PTRACE SYS_PACCT SYS_ADMIN SYS_BOOT SYS_NICE
       SYS_RESOURCE SYS_TIME SYS_TTY_CONFIG MKNOD LEASE AUDIT_WRITE AUDIT_CONTROL SETFCAP
       MAC_OVERRIDE MAC_ADMIN SYSLOG WAKE_ALARM BLOCK_SUSPEND AUDIT_READ PERFMON BPF
       CHECKPOINT_RESTORE)
bound=$((16#$(awk '/^CapBnd:/ {print $2}' /proc/self/status)))
drop=()
for i in "${!names[@]}"; do
  if (( (bound >> i & 1) == 0 )); then drop+=(--cap-drop "${names[$i]}"); fi
done
echo "docker-run: --privileged is refused here; running with every capability but" \
     "${drop[*]:-none} instead" >&2
exec docker run --rm --cap-add ALL "${drop[@]}" --device /dev/net/tun \
  --security-opt seccomp=unconfined --security-opt apparmor=unconfined \
  --security-opt systempaths=unconfined "$@"
