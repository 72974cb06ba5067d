#!/usr/bin/env bash
# The real-data benchmark: NW-UCLA (3D, cross-view), UTD-MHAD (3D, cross-subject) and Penn Action
# (2D, official split; real occlusion stays as mask holes under the synthetic corruption), every
# method at every level, then docs/results.md regenerated from the results.
#
#   benchmarks/run_real.sh                 # budget cpu, both regimes where affordable
#   BUDGET=gpu OUT=runs/real-gpu benchmarks/run_real.sh
#
# Resumable: run it again after an interruption and finished cells are skipped; an interrupted
# training continues from its last epoch. Set DATA to the folder holding the three datasets.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/data}
OUT=${OUT:-runs/real}
BUDGET=${BUDGET:-cpu}
SEED=${SEED:-0}
REGIME=${REGIME:-mixed}        # mixed: one model per method, tested at every level (4x cheaper)
FINETEC=${FINETEC:-finetec}
DATASETS=${DATASETS:-"nw_ucla utd_mhad penn_action"}

for name in $DATASETS; do
    # One dataset at a time, so that each finishes (and shows in the tables) before the next starts.
    finetec benchmark --data "$DATA/$name" --budget "$BUDGET" --regime "$REGIME" --seed "$SEED" --out "$OUT" \
        ${METHODS:+--methods $METHODS} ${LEVELS:+--levels $LEVELS}
done
finetec benchmark --report-only --out "$OUT" --write-docs docs/results.md
