# The two commands a newcomer needs (see README.md): `make run` and `make test`.
SWIFT ?= swift
CONFIG ?= debug

.PHONY: setup build run test bench clean

setup:
	./scripts/setup.sh

build: setup
	$(SWIFT) build -c $(CONFIG)

run: setup
	./scripts/run.sh

test:
	./scripts/test.sh

bench: setup
	SETUP_BENCH=1 ./scripts/setup.sh
	./scripts/bench.sh

clean:
	rm -rf .build data
