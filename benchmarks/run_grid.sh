#!/usr/bin/env bash
# The full real-data grid at the `standard` budget (issue 10): Penn Action, UTD-MHAD and NW-UCLA;
# ST-GCN++ + zero, ST-GCN++ + linear, CTR-GCN + linear, FineTec and its three ablations.
#   - mixed regime, tested at all four levels: every method with seeds 0-2, and FineTec and the best
#     baseline (ST-GCN++ + linear) also with seeds 3 and 4 (5 seeds);
#   - per-level regime at severe: every method with seeds 0-2.
# Per dataset: 46 recognition models + 5 stage-1 completion modules (one per seed, shared by both
# regimes); 121 cells (a mixed model gives 4). In all: 138 + 15 trainings, 363 cells. Then
# docs/results.json and docs/results.md are regenerated (per-clip predictions, paired intervals).
#
#   benchmarks/run_grid.sh                       # everything, resumable (re-run after an interruption)
#   DATASETS="utd_mhad" benchmarks/run_grid.sh   # one dataset
#   PARALLEL=2 benchmarks/run_grid.sh            # two datasets side by side (one torch thread each)
#
# Cost on 2 CPU cores: see docs/cli/benchmark.md ("Cost of the standard grid"). Set DATA to the folder holding
# the three datasets; OUT (default runs/grid) keeps the run folders and results.json.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/data}
OUT=${OUT:-runs/grid}
BUDGET=${BUDGET:-standard}
DATASETS=${DATASETS:-"utd_mhad nw_ucla penn_action"}
PARALLEL=${PARALLEL:-1}
THREADS=${THREADS:-1}
FINETEC=${FINETEC:-finetec}
ALL="stgcnpp_linear $FINETEC stgcnpp_zero ctrgcn_linear finetec_no_completion finetec_no_decomposition finetec_no_physics"
BEST="stgcnpp_linear $FINETEC"

bench() {  # dataset regime seed levels methods...
    local ds=$1 regime=$2 seed=$3 levels=$4; shift 4
    nice -n 10 finetec benchmark --data "$DATA/$ds" --budget "$BUDGET" --regime "$regime" --seed "$seed" \
        --levels $levels --methods "$@" --out "$OUT" --threads "$THREADS" --no-plots > /dev/null
}
one_dataset() {
    local ds=$1
    for seed in 0 1 2; do
        bench "$ds" mixed "$seed" "clean minor moderate severe" $ALL
        bench "$ds" per-level "$seed" severe $ALL
    done
    for seed in 3 4; do
        bench "$ds" mixed "$seed" "clean minor moderate severe" $BEST
    done
}
mkdir -p "$OUT"
if [ "$PARALLEL" -gt 1 ]; then
    printf '%s\n' $DATASETS | xargs -P "$PARALLEL" -I{} bash -c "$(declare -f bench one_dataset); \
        DATA='$DATA' OUT='$OUT' BUDGET='$BUDGET' THREADS='$THREADS' ALL='$ALL' BEST='$BEST' one_dataset {} \
        > '$OUT/{}.log' 2>&1"
else
    for ds in $DATASETS; do one_dataset "$ds" 2>&1 | tee -a "$OUT/$ds.log"; done
fi
finetec benchmark --report-only --out "$OUT" --write-docs docs/results.md
