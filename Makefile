# `make run`: install what is missing, build, run the default experiment.
# `make test`: install what is missing, build, run every test (needs root: namespaces, OVS):
# the Rust tests (reports checked in headless Chromium), then the Python module's.
CARGO ?= cargo
RECKON := ./target/release/reckon

.PHONY: setup setup-test build run test test-python python bench clean

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
