#!/usr/bin/env bash
# Run every benchmark, write benchmarks/results/*.json|md, regenerate docs/benchmarks.md.
#
#   bash benchmarks/run_all.sh            # the full run (~15 minutes on 2 cores)
#   bash benchmarks/run_all.sh --quick    # a smoke test of the whole chain (~3 minutes);
#                                         # writes to benchmarks/.work/quick/, not results/
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
py="$repo/.venv/bin/python"
[ -x "$py" ] || py="$(command -v python3)"
cd "$repo"

if ! command -v wrk >/dev/null 2>&1; then
  echo "installing wrk (Debian package)"
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && apt-get install -y -qq wrk
  else
    echo "wrk is required: sudo apt-get install -y wrk" >&2
    exit 1
  fi
fi

if [ "${1:-}" = "--quick" ]; then
  out="$here/.work/quick"
  mkdir -p "$out"
  "$py" benchmarks/bench_predict.py --quick --out "$out/predict.json"
  "$py" benchmarks/bench_ingest.py --quick --out "$out/ingest.json"
  "$py" benchmarks/sqlite_two_writers.py --runs 1 --seconds 1 --out "$out/sqlite_two_writers.json"
  "$py" benchmarks/bench_client.py --quick --out "$out/client.json"
  echo "quick run done: $out (docs/benchmarks.md not touched)"
  exit 0
fi

started=$(date +%s)
status=0
"$py" benchmarks/bench_predict.py || status=$?     # 4 runs x 10 s per cell and side, ~7.5 min
"$py" benchmarks/bench_ingest.py || status=$?      # SQLite FULL/NORMAL + PostgreSQL, ~4 min
"$py" benchmarks/sqlite_two_writers.py --seconds 2 || status=$?   # 2 workers on one SQLite file, ~1 min
"$py" benchmarks/bench_client.py || status=$?      # loopwatch.client in the caller's process, ~2 min
if [ -x "$here/.venv-tools/bin/py-spy" ]; then      # optional: see README.md, "Profiling tools"
  "$py" benchmarks/profile_service.py --rows 100 --seconds 10 || status=$?   # ~1 min
fi
"$py" benchmarks/make_report.py
echo "all benchmarks: $(( $(date +%s) - started )) s (exit status $status)"
exit $status
