#!/usr/bin/env bash
# The real-data benchmark: NW-UCLA (3D, cross-view), UTD-MHAD (3D, cross-subject) and Penn Action
# (2D, official split; real occlusion stays as mask holes under the synthetic corruption); each
# method tested at every corruption level; then docs/results.md regenerated from the results.
#
#   benchmarks/run_real.sh                 # budget standard, mixed regime, ST-GCN++ (zero, linear) and FineTec
#   BUDGET=cpu OUT=runs/real-cpu benchmarks/run_real.sh   # the earlier short budget
# The full grid (every method, 5 / 3 seeds, both regimes) is benchmarks/run_grid.sh; on a GPU,
# benchmarks/run_gpu.sh.
#   SEEDS="1 2 3 4" METHODS="stgcnpp_linear finetec" benchmarks/run_real.sh   # more seeds (the spread)
#
# Resumable: run it again after an interruption and finished cells are skipped; an interrupted
# training continues from its last epoch. Set DATA to the folder holding the three datasets.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/data}
OUT=${OUT:-runs/real}
BUDGET=${BUDGET:-standard}
SEEDS=${SEEDS:-${SEED:-0}}     # one run per seed, one after the other (the report adds a table across seeds)
REGIME=${REGIME:-mixed}        # mixed: one model per method, tested at every level (4x cheaper)
METHODS=${METHODS-"stgcnpp_linear finetec stgcnpp_zero"}   # "" = the budget's full list (adds CTR-GCN, ablations)
THREADS=${THREADS:-1}          # 1 torch thread per run: far faster than 2 on a busy 2-core machine
PARALLEL=${PARALLEL:-1}        # 1: the datasets run side by side (one process each, same results.json)
DATASETS=${DATASETS:-"nw_ucla utd_mhad penn_action"}

run_one() {  # dataset seed
    finetec benchmark --data "$DATA/$1" --budget "$BUDGET" --regime "$REGIME" --seed "$2" --out "$OUT" \
        --threads "$THREADS" ${METHODS:+--methods $METHODS} ${LEVELS:+--levels $LEVELS}
}
mkdir -p "$OUT"
for seed in $SEEDS; do
    pids=()
    for name in $DATASETS; do
        if [ "$PARALLEL" = 1 ]; then
            run_one "$name" "$seed" > "$OUT/$name.s$seed.log" 2>&1 &   # the results file is shared safely (locked merge)
            pids+=($!)
        else
            run_one "$name" "$seed"
        fi
    done
    status=0
    for pid in ${pids[@]+"${pids[@]}"}; do wait "$pid" || status=$?; done
    [ "$status" = 0 ] || { echo "a dataset run failed (see $OUT/*.log); re-run to resume" >&2; exit "$status"; }
done
finetec benchmark --report-only --out "$OUT" --write-docs docs/results.md
