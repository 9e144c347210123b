# `make run`: install what is missing, build, run the default experiment.
# `make test`: install what is missing, build, run every test (needs root: namespaces, OVS):
# the Rust tests (reports checked in headless Chromium), then the Python module's, then the
# image test last (it builds `make docker`'s image; the engine stays busy for a while after).
# `make docker`: build the image (reckon:latest) and run the default experiment in a
# container; its results land in results/.
CARGO ?= cargo
RECKON := ./target/release/reckon

IMAGE ?= reckon:latest

.PHONY: setup setup-test build run test test-python python bench clean docker docker-image

setup:
	scripts/setup.sh

setup-test:
	scripts/setup.sh --test

build: setup
	$(CARGO) build --release

# The default experiment, short: etcd on wan with 3 data centres (20 ms between them), the
# uniform workload, the leader cut off from one follower between T/3 and 2T/3.
run: build
	$(RECKON) doctor
	$(RECKON) clean --only rkrun
	$(RECKON) --prefix rkrun run etcd wan uniform partial-partition --duration 15 --result-location results/make-run-$$(date +%Y%m%d-%H%M%S)

test: setup-test
	$(CARGO) build --release
	$(CARGO) test --release
	scripts/test-python.sh
	$(CARGO) test --release --test docker -- --ignored

test-python: setup-test
	scripts/test-python.sh

# The Python module into the current Python environment (a virtualenv, say): `import reckon`.
python: setup
	pip install .

bench: build
	$(RECKON) bench net
	$(RECKON) bench engine
	$(RECKON) bench run
	$(RECKON) bench client

clean:
	$(RECKON) clean

# The image: the host's release binaries and /opt/reckon on Debian 12 (scripts/docker-image.sh;
# the base comes from a registry or, with none, from debootstrap: scripts/docker-base.sh).
docker-image: build
	scripts/docker-image.sh $(IMAGE)

# The default experiment in a container (privileged: it builds namespaces, veths and bridges
# inside the container's own network namespace; scripts/docker-run.sh); results to results/
# on the host.
docker: docker-image
	mkdir -p results
	RECKON_IMAGE=$(IMAGE) scripts/docker-run.sh -v "$$(pwd)/results:/results" $(IMAGE) \
	  reckon run etcd wan uniform partial-partition --duration 15 \
	  --result-location /results/docker-run-$$(date +%Y%m%d-%H%M%S)
