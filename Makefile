# `make run`: install what is missing, build, run the default experiment.
# `make test`: install what is missing, build, run every test (needs root: namespaces, OVS).
CARGO ?= cargo
RECKON := ./target/release/reckon

.PHONY: setup build run test bench clean

setup:
	scripts/setup.sh

build: setup
	$(CARGO) build --release

# Until `reckon run` lands, the default experiment is the emulated network itself: check the
# machine, bring up wan with 3 data centres (all host pairs checked over ICMP and TCP), ping
# across it, and take it down.
run: build
	$(RECKON) doctor
	$(RECKON) clean --only rkrun
	$(RECKON) --prefix rkrun topo up wan --number-nodes 3
	$(RECKON) --prefix rkrun topo exec h1 -- ping -c 3 10.0.1.3 || true
	$(RECKON) --prefix rkrun topo down

test: setup
	$(CARGO) build --release
	$(CARGO) test --release

bench: build
	$(RECKON) bench net
	$(RECKON) bench engine

clean:
	$(RECKON) clean
