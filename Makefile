# floodgate — the two commands a newcomer needs are `make run` and `make test`.
GO      ?= go
BIN     ?= bin/floodgate
FUZZTIME ?= 10s
RUNARGS ?=
# VERSION and COMMIT are stamped into the binary (floodgate --version, floodgate_build_info).
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null)
COMMIT  ?= $(shell git rev-parse HEAD 2>/dev/null)

.PHONY: run build test vet lint fmt-check fuzz bench deps-test

## run: start floodgate with the embedded broker (Kafka :9092, HTTP :9094)
run:
	$(GO) run ./cmd/floodgate serve $(RUNARGS)

## build: build the binary into bin/
build:
	$(GO) build -ldflags "-X main.version=$(VERSION) -X main.commit=$(COMMIT)" -o $(BIN) ./cmd/floodgate

## test: vet, format check, the whole suite with -race, and a short fuzz run
## The attack suite measures latency bounds against the real binary: it runs
## on its own, after the rest, so the other packages' tests do not share its
## two cores while it measures. The gateway's tests run on their own too:
## they drive race builds of kfake with tens of MiB of Fetch answers, which
## beside cmd/floodgate's child processes took longer than the gateway's
## upstream request timeout (the splice tests now allow 2 min for it).
## The fuzz run counts executions, not seconds:
## with a duration, Go 1.26's fuzz coordinator may fail a target with
## "context deadline exceeded" as the time runs out (golang/go#75804, fixed
## in Go 1.27; seen here at 3 s and at 5 s).
test: vet fmt-check lint deps-test
	$(GO) test -race -timeout 20m $$($(GO) list ./... | grep -v -e '/bench/attack$$' -e '/gateway$$')
	$(GO) test -race -timeout 10m ./gateway/
	$(GO) test -race -timeout 10m ./bench/attack/
	$(MAKE) fuzz FUZZTIME=10000x

vet:
	$(GO) vet ./...

## lint: staticcheck at a pinned version
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.6.1
lint:
	$(GO) run $(STATICCHECK) ./...

fmt-check:
	@out=$$(gofmt -l . | grep -v '^vendor/'); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

## deps-test: install what the client-compatibility tests need with apt-get (best effort,
## quiet: one line names each package it installs; the tests skip loudly what is missing):
## kcat (librdkafka), prometheus (for promtool)
APT_INSTALL = echo "make: installing Debian package(s) $(1) with apt-get (quietly; output hidden)"; \
	apt-get install -y -qq $(1) >/dev/null 2>&1 || \
	(apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq $(1) >/dev/null 2>&1) || \
	sudo -n apt-get install -y -qq $(1) >/dev/null 2>&1
deps-test:
	@command -v kcat >/dev/null 2>&1 || (command -v apt-get >/dev/null 2>&1 && ($(call APT_INSTALL,kcat))) || \
		echo "NOTE: kcat could not be installed; the librdkafka compatibility test will be skipped"
	@command -v promtool >/dev/null 2>&1 || (command -v apt-get >/dev/null 2>&1 && ($(call APT_INSTALL,prometheus))) || \
		echo "NOTE: promtool (Debian package prometheus) could not be installed; TestPromtoolAcceptsMetrics will be skipped"
	@command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || \
		echo "NOTE: node/npm not found; the kafkajs compatibility test will be skipped"

## fuzz: run every fuzz target in the tree for FUZZTIME each (a duration, or Nx executions) (packages found by their Fuzz functions)
fuzz:
	@for d in $$(grep -rl --include='*_test.go' '^func Fuzz' . | xargs -n1 dirname | sort -u); do \
		for f in $$(grep -h '^func Fuzz' $$d/*_test.go | sed 's/^func \(Fuzz[A-Za-z0-9_]*\).*/\1/'); do \
			echo "fuzz $$d $$f"; \
			$(GO) test -run='^$$' -fuzz="^$$f\$$" -fuzztime=$(FUZZTIME) $$d || exit 1; done; done

## bench: the go benchmarks of the hot paths, then the standard suite side by side with
## nginx, kfake and net/http; rewrites the tables in BENCHMARKS.md (BENCHARGS="--quick" for a smoke run)
BENCHARGS ?=
bench: build
	@command -v nginx >/dev/null 2>&1 && command -v wrk >/dev/null 2>&1 && command -v iperf3 >/dev/null 2>&1 || \
		($(call APT_INSTALL,nginx wrk iperf3)) || \
		echo "NOTE: nginx/wrk/iperf3 could not be installed; those comparisons will say so"
	@mkdir -p bin
	$(GO) test -run='^$$' -bench=. -benchmem -count=5 ./codec/... ./loop/ ./limits/ > bin/gobench.txt; rc=$$?; cat bin/gobench.txt; exit $$rc
	$(GO) build -o bin/bench-suite ./bench/suite
	bin/bench-suite --floodgate $(BIN) --md BENCHMARKS.md --charts bench/charts --gobench bin/gobench.txt $(BENCHARGS)
