#!/usr/bin/env bash
# Continue both shipped models on a lent GPU within a fixed time (issue 11's GPU item).
#
# The GPU machine gets a copy of the repository and nothing beside it (at most 64 MiB), and
# it has its own python3 with torch, numpy, pillow, safetensors and typer but no `derain`
# install; so the clean photos travel as a JPEG pack and the code runs from the checkout.
#
#   here:   bash tools/gpu_continue.sh pack    # ../shared/data/clean -> .gpu-data/clean
#   there:  device run, carry [".gpu-data"], timeout_s 600:
#           bash tools/gpu_continue.sh train
#   back:   $OUT/danet/{model.safetensors,config.json,log.csv}, the same for danet-plus,
#           and $OUT/train.log; score them here on the three validation sets (full sets,
#           fp32) before shipping under the issue's rule.
#
# Each model first runs CAL_STEPS steps to measure its step time; then the training budget
# (BUDGET_S seconds, shared 40/60 between danet and danet-plus) is turned into a step count,
# so the cosine schedule ends inside the budget. Settings can be overridden from the
# environment: BUDGET_S, BATCH, LR, CROP, CAL_STEPS, DEVICE, SEED, PYTHON, DATA.
set -euo pipefail

mode=${1:-}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
PY=${PYTHON:-python3}
DATA=${DATA:-.gpu-data/clean}
PACK_LIMIT_MIB=${PACK_LIMIT_MIB:-38}

pack() {
    local src=${1:-../shared/data/clean}
    rm -rf "$DATA" && mkdir -p "$DATA"
    # derain's own folder lister and image reader, so the pack holds what training would read
    PYTHONPATH=$root "$PY" - "$src" "$DATA" "$PACK_LIMIT_MIB" <<'EOF'
import sys
from pathlib import Path
from PIL import Image
from derain.imaging import rgb8
from derain.io_files import iter_images

src, dst, limit = Path(sys.argv[1]), Path(sys.argv[2]), float(sys.argv[3]) * 2**20
files = sorted(iter_images(src, recursive=True))
for quality in (95, 92, 90, 85):
    total = 0
    for i, path in enumerate(files):
        out = dst / f"{i:04d}_{path.parent.name}_{path.stem}.jpg"
        Image.fromarray(rgb8(path)).save(out, "JPEG", quality=quality, subsampling=0)
        total += out.stat().st_size
    if total <= limit:
        print(f"{len(files)} photos -> {dst} at JPEG quality {quality}: {total / 2**20:.1f} MiB")
        break
    for out in dst.iterdir():
        out.unlink()
else:
    sys.exit(f"{src}: the photos do not fit in {limit / 2**20:.0f} MiB even at quality 85")
EOF
}

train() {
    local budget=${BUDGET_S:-360} batch=${BATCH:-32} lr=${LR:-3e-4} crop=${CROP:-128}
    local cal=${CAL_STEPS:-60} device=${DEVICE:-cuda} seed=${SEED:-31}
    local out=${OUT:-runs/gpu-out} work
    work=$(mktemp -d)
    [ -d "$DATA" ] || { echo "$DATA: missing; run 'bash tools/gpu_continue.sh pack' here first" >&2; exit 2; }
    local workers=$(( $(nproc) > 3 ? $(nproc) - 2 : 1 ))
    export PYTHONPATH=$root PYTHONUNBUFFERED=1
    mkdir -p "$out"
    "$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
    _fit() {  # _fit MODEL STEPS RUN_DIR [extra]
        local model=$1 steps=$2 dir=$3; shift 3
        "$PY" -m derain train --data "$DATA" --synthetic wide --recipe cpu-continue \
            --model "$model" --init "weights/$model.safetensors" --steps "$steps" \
            --batch-size "$batch" --lr "$lr" --workers "$workers" --device "$device" \
            --seed "$seed" --set crop="$crop" --set warmup_steps=100 --set log_every=10 \
            --set ckpt_every=1000000 -o "$dir" "$@"
    }
    local -A steps
    local model share sps
    for model in danet danet-plus; do
        _fit "$model" "$cal" "$work/cal-$model" > "$work/cal-$model.log" 2>&1 \
            || { cat "$work/cal-$model.log"; exit 1; }
        # median seconds per step over the logged rows after the first (which holds start-up)
        sps=$("$PY" -c "
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1])))[1:]
print(statistics.median(float(r['sec_per_step']) for r in rows))" "$work/cal-$model/log.csv")
        share=$([ "$model" = danet ] && echo 0.4 || echo 0.6)
        steps[$model]=$("$PY" -c "print(max(int($budget * $share / $sps), 2 * $cal))")
        echo "$model: $sps s/step at batch $batch, ${crop}² -> ${steps[$model]} steps"
    done
    for model in danet danet-plus; do
        _fit "$model" "${steps[$model]}" "$work/$model" --export "$out/$model"
        cp "$work/$model/log.csv" "$out/$model/log.csv"
    done
    rm -rf "$work"
}

case $mode in
    pack) shift; pack "$@" ;;
    train) mkdir -p "${OUT:-runs/gpu-out}" && train 2>&1 | tee "${OUT:-runs/gpu-out}/train.log" ;;
    *) echo "usage: bash tools/gpu_continue.sh pack [CLEAN_DIR] | train" >&2; exit 2 ;;
esac
