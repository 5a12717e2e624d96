#!/usr/bin/env bash
# bench.sh [bin/bench flags]: what `make bench` runs. Installs what the
# benchmark needs (Debian: wrk, uwsgi with its Python 3 plugin, Flask for
# the Python original, Prometheus), builds, and runs bin/bench, which prints
# the tables and writes BENCHMARKS.md.
#
# Ports (none of `make run`'s): apps 5100-5103, admin 5150, exporters
# 9202/9203 (DogStatsD 9225/9226), Prometheus 9190/9191. Other agents may run
# load on the same machine, so run it as
#   flock /tmp/forkwatch-ports.lock make bench
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh wrk uwsgi uwsgi-plugin-python3 python3-flask prometheus
go build -o bin/ ./cmd/...
go tool -n statsd_exporter >/dev/null # build the pinned exporter before timing anything
exec ./bin/bench "$@"
