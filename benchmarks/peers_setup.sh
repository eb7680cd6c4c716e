#!/usr/bin/env bash
# Create one virtualenv per peer library for benchmarks/drift_speed.py.
#
#   bash benchmarks/peers_setup.sh              # all peers (idempotent)
#   bash benchmarks/peers_setup.sh evidently    # one peer
#   PEERS_FORCE=1 bash benchmarks/peers_setup.sh   # rebuild from scratch
#
# Each peer lives in benchmarks/.peers/<name> (git-ignored), made with
# `python3 -m venv` and pip. Peers are never installed into the project's
# .venv and never become a dependency of loopwatch. Versions are pinned so the
# numbers in docs/benchmarks-drift.md can be reproduced.
#
#   evidently     evidently==0.7.23   (+ pandas<3: 0.7.23 does not import with pandas 3)
#   nannyml       nannyml==0.13.1     (+ statsmodels, pandas<3)
#   alibi         alibi-detect==0.13.0, base package only: KSDrift is numpy/scipy;
#                 no tensorflow or torch is installed (alibi-detect 0.13 pins numpy<2,
#                 hence pyarrow<21: newer pyarrow needs numpy>=2)
#
# Every venv also gets pyarrow, to read the benchmark's Parquet files.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PEERS_DIR="${PEERS_DIR:-$HERE/.peers}"
PYTHON="${PYTHON:-python3}"
mkdir -p "$PEERS_DIR"

declare -A SPECS=(
  [evidently]="evidently==0.7.23 pandas<3 pyarrow"
  [nannyml]="nannyml==0.13.1 statsmodels pandas<3 pyarrow"
  [alibi]="alibi-detect==0.13.0 pyarrow<21"
)
declare -A PROBES=(
  [evidently]="import pyarrow.parquet, evidently; from evidently import Report; from evidently.presets import DataDriftPreset; print('evidently', evidently.__version__)"
  [nannyml]="import pyarrow.parquet, nannyml; print('nannyml', nannyml.__version__)"
  [alibi]="import pyarrow.parquet, alibi_detect; from alibi_detect.cd import KSDrift; print('alibi-detect', alibi_detect.__version__)"
)

if [ "$#" -gt 0 ]; then names=("$@"); else names=(evidently nannyml alibi); fi

for name in "${names[@]}"; do
  spec="${SPECS[$name]:-}"
  if [ -z "$spec" ]; then echo "unknown peer: $name (known: ${!SPECS[*]})" >&2; exit 2; fi
  venv="$PEERS_DIR/$name"
  if [ "${PEERS_FORCE:-0}" = 1 ]; then rm -rf "$venv"; fi
  if [ -x "$venv/bin/python" ] && NML_DISABLE_USAGE_LOGGING=1 "$venv/bin/python" -c "${PROBES[$name]}" >/dev/null 2>&1; then
    echo "[$name] ready: $("$venv/bin/python" -c "${PROBES[$name]}" 2>/dev/null | tail -1)"
    continue
  fi
  echo "[$name] creating $venv"
  rm -rf "$venv"
  "$PYTHON" -m venv "$venv"
  # pip's notes about this machine's optional local indexes are noise here
  "$venv/bin/python" -m pip install -q --upgrade pip 2>&1 | { grep -v '^WARNING: Location' || true; }
  # word splitting of $spec is intended: one argument per requirement
  # shellcheck disable=SC2086
  "$venv/bin/python" -m pip install -q $spec 2>&1 | { grep -v '^WARNING: Location' || true; }
  NML_DISABLE_USAGE_LOGGING=1 "$venv/bin/python" -c "${PROBES[$name]}"
  "$venv/bin/python" -m pip freeze > "$venv/freeze.txt"
  echo "[$name] installed ($(wc -l < "$venv/freeze.txt") packages, $(du -sh "$venv" | cut -f1))"
done
