# forkwatch. `make run` starts the stack, `make test` runs every test; both
# install what they need on Debian (as root; otherwise they print the command).
GO ?= go
# Debian packages: what `make run` needs, and what the tests need on top.
RUN_DEPS  := prometheus
TEST_DEPS := prometheus docker-compose

.PHONY: all build run test deps load vet bench

all: build

build:
	$(GO) build -o bin/ ./cmd/...
	@# compile the pinned statsd_exporter once, so the first run does not wait
	$(GO) tool -n statsd_exporter >/dev/null

# make run: statsd_exporter, Prometheus and the webapp (5 workers), all on
# 127.0.0.1. Ports: APP_ADDR, STATSD_ADDR, EXPORTER_ADDR, PROMETHEUS_ADDR.
APP_ADDR        ?= 127.0.0.1:5000
STATSD_ADDR     ?= 127.0.0.1:9125
EXPORTER_ADDR   ?= 127.0.0.1:9102
PROMETHEUS_ADDR ?= 127.0.0.1:9090
run: build
	@scripts/deps.sh $(RUN_DEPS)
	exec ./bin/stack -app $(APP_ADDR) -statsd $(STATSD_ADDR) -exporter $(EXPORTER_ADDR) -prometheus $(PROMETHEUS_ADDR)

vet:
	$(GO) vet ./...

test: build vet
	@scripts/deps.sh $(TEST_DEPS)
	$(GO) test -count=1 -timeout 30m ./...

# A bounded burst over all demo routes against a running `make run`.
LOAD_N ?= 2000
load: build
	./bin/webapp load -url http://$(APP_ADDR) -n $(LOAD_N) -c 8

# make bench: no metrics vs forkwatch vs the Python original (../shared/peers/
# seed-flask) under wrk, exact counts at saturation with hey, the middleware's
# Go benchmarks; prints the tables and writes BENCHMARKS.md (a few minutes).
# Installs wrk, hey, uwsgi and Flask. BENCH_FLAGS are passed to bin/bench
# (bin/bench -h). Run it as `flock /tmp/forkwatch-ports.lock make bench`.
BENCH_FLAGS ?=
bench:
	scripts/bench.sh $(BENCH_FLAGS)
