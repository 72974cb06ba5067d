#!/usr/bin/env bash
# The `gpu` budget on the three real datasets in one sitting, sized for about 10 minutes on one
# H200-class GPU (an estimate: this script has not yet run on a GPU; the first run records its
# wall times in docs/results.json with the machine named).
#
# What it covers: NW-UCLA, UTD-MHAD and Penn Action; ST-GCN++ + linear interpolation (the best
# baseline of the CPU benchmarks) and FineTec (with its stage-1 completion module); mixed regime,
# tested at clean, minor, moderate and severe; seed 0. Paper-width backbones (64 channels, 10
# blocks), T=64, >= 60 epochs and >= 3000 steps of batch 32 (finetec.benchmark.spec.BUDGETS["gpu"]).
# That is 9 trainings (3 x stage 1, 3 x baseline, 3 x FineTec), 24 cells. More seeds or methods:
#   SEEDS="0 1 2" METHODS="stgcnpp_linear finetec ctrgcn_linear" benchmarks/run_gpu.sh
# (each further seed adds about the same time again).
#
# Resumable like every benchmark run; then docs/results.json and docs/results.md are regenerated.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/data}
OUT=${OUT:-runs/gpu}
SEEDS=${SEEDS:-0}
METHODS=${METHODS:-"stgcnpp_linear finetec"}
DATASETS=${DATASETS:-"utd_mhad nw_ucla penn_action"}
python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA GPU: run_gpu.sh needs one')"
start=$(date +%s)
for seed in $SEEDS; do
    for ds in $DATASETS; do
        finetec benchmark --data "$DATA/$ds" --budget gpu --regime mixed --seed "$seed" --device cuda \
            --levels clean minor moderate severe --methods $METHODS --out "$OUT" --no-plots > /dev/null
        echo "$(date -u +%H:%M:%S) $ds seed $seed done, $(( $(date +%s) - start )) s so far" >&2
    done
done
finetec benchmark --report-only --out "$OUT" --write-docs docs/results.md
echo "run_gpu.sh: $(( $(date +%s) - start )) s in all" >&2
