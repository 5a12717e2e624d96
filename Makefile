# forkwatch. `make run` starts the stack; `make test` runs every test (the
# fast unit tier, `go test ./...`, then the e2e tier against the real
# exporter, Prometheus, Chromium and docker-compose); both install what they
# need on Debian (as root; otherwise they print the command).
GO ?= go
# Debian packages: what `make run` needs, and what the tests need on top.
RUN_DEPS  := prometheus
TEST_DEPS := prometheus docker-compose chromium systemd

.PHONY: all build run test unit e2e deps load verify vet fuzz fuzz-short bench

all: build

build:
	$(GO) build -o bin/ ./cmd/...
	@# compile the pinned statsd_exporter once, so the first run does not wait
	$(GO) tool -n statsd_exporter >/dev/null

# make run: statsd_exporter, Prometheus and the webapp (5 workers), all on
# 127.0.0.1. Ports: APP_ADDR, STATSD_ADDR, EXPORTER_ADDR, PROMETHEUS_ADDR,
# ADMIN_ADDR (the supervisor's admin endpoint). Each is bind-tested first: a
# port another program holds stops make run with the variable to change.
APP_ADDR        ?= 127.0.0.1:5000
ADMIN_ADDR      ?= 127.0.0.1:5050
STATSD_ADDR     ?= 127.0.0.1:9125
EXPORTER_ADDR   ?= 127.0.0.1:9102
PROMETHEUS_ADDR ?= 127.0.0.1:9090
# STATSD_UNIXGRAM=/path/x.sock: metrics over a Unix datagram socket (mode 0660)
# instead of UDP; the exporter then listens on no network port for them.
STATSD_UNIXGRAM ?=
run: build
	@scripts/deps.sh $(RUN_DEPS)
	exec ./bin/stack -app $(APP_ADDR) -statsd $(STATSD_ADDR) -exporter $(EXPORTER_ADDR) -prometheus $(PROMETHEUS_ADDR) -admin "$(ADMIN_ADDR)" $(if $(STATSD_UNIXGRAM),-statsd-unixgram $(STATSD_UNIXGRAM))

vet:
	$(GO) vet ./...
	$(GO) vet -tags e2e ./e2e/

test: build vet
	@scripts/deps.sh $(TEST_DEPS)
	$(GO) test -count=1 -timeout 5m ./...
	$(GO) test -count=1 -timeout 30m -tags e2e ./e2e/
	@$(MAKE) --no-print-directory fuzz-short

# The fast tier alone: unit tests, no external process, under 2 minutes.
unit:
	$(GO) test -count=1 ./...

# The e2e tier alone; E2E_RUN selects tests (go test -run).
E2E_RUN ?= .
e2e: build
	@scripts/deps.sh $(TEST_DEPS)
	$(GO) test -count=1 -timeout 30m -tags e2e -run '$(E2E_RUN)' ./e2e/

# The first hour, against a running `make run`: `make load` records the
# totals, sends a bounded load over the demo routes and saves what it sent in
# $(LOAD_RECORD); `make verify` compares what Prometheus saw since with it.
# LOAD_ARGS adds flags (e.g. LOAD_ARGS="-d 10s -c 16"; see bin/fwctl load -h).
LOAD_N      ?= 2000
LOAD_C      ?= 8
LOAD_RECORD ?= .run/last-load.json
load: build
	./bin/fwctl load -url http://$(APP_ADDR) -exporter http://$(EXPORTER_ADDR) -prometheus http://$(PROMETHEUS_ADDR) -n $(LOAD_N) -c $(LOAD_C) -record $(LOAD_RECORD) $(LOAD_ARGS)

verify: build
	./bin/fwctl verify -prometheus http://$(PROMETHEUS_ADDR) -record $(LOAD_RECORD)

# Fuzz targets (package:name). Their seed corpora run in every `go test`;
# `make test` also fuzzes each for FUZZ_SHORT, `make fuzz` for FUZZTIME.
FUZZ_TARGETS := ./statsd:FuzzSanitizeTagValue ./worker:FuzzMux ./worker:FuzzPattern ./worker:FuzzMethod
FUZZ_SHORT   ?= 3s
FUZZTIME     ?= 2m
fuzz:
	@for t in $(FUZZ_TARGETS); do \
	  pkg=$${t%%:*}; name=$${t#*:}; \
	  echo "fuzz $$name in $$pkg for $(FUZZTIME)"; \
	  $(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	done

fuzz-short:
	@$(MAKE) --no-print-directory fuzz FUZZTIME=$(FUZZ_SHORT)

# make bench: the cost of exact metrics. CPU per request (workers, exporter,
# Prometheus) and req/s of fasthttp's own prefork, forkwatch -no-metrics,
# forkwatch with metrics and the Python original (cmd/bench/original, Flask
# under uwsgi), in interleaved rounds at saturation (wrk) and at a fixed load
# (internal/loadgen); exact counts at saturation with internal/loadgen; the middleware's Go
# benchmarks. Prints the tables and writes BENCHMARKS.md with each target met
# or missed (about 6 minutes). Installs wrk, uwsgi and Flask.
# BENCH_FLAGS are passed to bin/bench (bin/bench -h). Run it as
# `flock /tmp/forkwatch-ports.lock make bench`.
BENCH_FLAGS ?=
bench:
	scripts/bench.sh $(BENCH_FLAGS)
