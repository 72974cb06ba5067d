#!/usr/bin/env bash
# The real-data benchmark: NW-UCLA (3D, cross-view), UTD-MHAD (3D, cross-subject) and Penn Action
# (2D, official split; real occlusion stays as mask holes under the synthetic corruption); each
# method tested at every corruption level; then docs/results.md regenerated from the results.
#
#   benchmarks/run_real.sh                 # budget cpu, mixed regime, ST-GCN++ (zero, linear) and FineTec
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
METHODS=${METHODS-"stgcnpp_linear finetec stgcnpp_zero"}   # "" = the budget's full list (adds CTR-GCN, ablations)
THREADS=${THREADS:-1}          # 1 torch thread per run: far faster than 2 on a busy 2-core machine
PARALLEL=${PARALLEL:-1}        # 1: the datasets run side by side (one process each, same results.json)
DATASETS=${DATASETS:-"nw_ucla utd_mhad penn_action"}

run_one() {
    finetec benchmark --data "$DATA/$1" --budget "$BUDGET" --regime "$REGIME" --seed "$SEED" --out "$OUT" \
        --threads "$THREADS" ${METHODS:+--methods $METHODS} ${LEVELS:+--levels $LEVELS}
}
mkdir -p "$OUT"
pids=()
for name in $DATASETS; do
    if [ "$PARALLEL" = 1 ]; then
        run_one "$name" > "$OUT/$name.log" 2>&1 &   # the results file is shared safely (locked merge)
        pids+=($!)
    else
        run_one "$name"
    fi
done
status=0
for pid in ${pids[@]+"${pids[@]}"}; do wait "$pid" || status=$?; done
[ "$status" = 0 ] || { echo "a dataset run failed (see $OUT/*.log); re-run to resume" >&2; exit "$status"; }
finetec benchmark --report-only --out "$OUT" --write-docs docs/results.md
