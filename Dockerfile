# reckon in a container: `make docker` builds this image and runs the default experiment in it.
#
# The image holds what reckon needs at run time and nothing to build it: the `reckon` binary is
# built on the host (`cargo build --release`) and copied in, as are the servers setup.sh put in
# /opt/reckon (etcd 3.5, NATS). That keeps the image free of a Rust toolchain, a second build of
# every crate and pip, and keeps the layers cached: the package layer changes only with the
# package list, the last layers with the binary. The build context is the folder the Makefile
# stages (target/docker: this file, the binaries, docker/entrypoint.sh, opt-reckon/), not the
# checkout.
#
# BASE is Debian 12: the registry's debian:bookworm where one is reachable or present, else a
# base made locally with debootstrap (scripts/docker-base.sh decides and names it).
ARG BASE=debian:bookworm
FROM ${BASE}

# The emulated network (Open vSwitch, iproute2, nftables/iptables, ethtool), the systems under
# test from Debian (etcd 3.4 and etcdctl, ZooKeeper's jars and a headless Java runtime — most of
# the image), tools used inside hosts. The same list as scripts/setup.sh, less what only
# building and testing need.
RUN apt-get update -q \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
      openvswitch-switch etcd-server etcd-client libzookeeper-java default-jre-headless \
      iproute2 nftables iptables ethtool \
      iputils-ping procps ca-certificates \
 && apt-get clean && rm -rf /var/lib/apt/lists/* /usr/share/doc/* /usr/share/man/*

COPY opt-reckon/ /opt/reckon/
COPY entrypoint.sh /usr/local/bin/reckon-entrypoint
COPY reckon reckon-stdio-client /usr/local/bin/

# reckon writes results/<run> under the working directory: mount the host's results folder at
# /results (`-v "$PWD/results:/results"`) and they land there.
WORKDIR /
ENTRYPOINT ["/usr/local/bin/reckon-entrypoint"]
CMD ["reckon", "run", "etcd", "wan", "uniform", "partial-partition"]
