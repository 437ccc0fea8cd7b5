#!/usr/bin/env bash
# Continue both shipped models on a lent GPU in one device call (issues 11 and 25).
#
# The GPU machine gets a copy of the repository and nothing beside it (at most 64 MiB), and
# it has its own python3 with torch, numpy, pillow, safetensors and typer but no `derain`
# install; so the clean photos travel as a JPEG pack and the code runs from the checkout.
#
#   here:   bash tools/gpu_train.sh pack     # ../shared/data/clean -> .gpu-data/clean
#           (every photo at its own scale, JPEG quality 90, the large ones cut to a central
#           window, its side lowered until the pack fits 38 MiB)
#   there:  device run, carry [".gpu-data"], timeout_s 600:
#           bash tools/gpu_train.sh train
#   back:   $OUT/danet/{model.safetensors,config.json,log.csv}, the same for danet-plus,
#           and $OUT/train.log; score them here on the three validation sets (full sets,
#           fp32) before shipping under the weights issue's rule.
#   then, if device time is left: bash tools/gpu_train.sh bench  (a few minutes: crops/s of
#           the data paths and the steps of both models, host waits per step)
#
# No calibration runs: each model trains with `derain train --time-budget`, which measures
# its steady step rate after a warm-up and fits the cosine schedule to the steps that fit.
# BUDGET_S seconds (default 470, so two start-ups fit in a 9-minute call) are shared 40/60
# between danet and danet-plus; each budget counts from the model's start (photos decoded
# onto the GPU, steps, checkpoint and export). On CUDA the photos, crops and rain stay on
# the GPU (no DataLoader workers). Settings can be overridden from the environment: BUDGET_S,
# BATCH, LR, CROP, DEVICE, DATA_DEVICE, SEED, RAIN_LEFT_WEIGHT (the loss term of
# derain.train.losses.rain_left; 0, the paper's loss, by default), PYTHON, DATA, OUT, MODELS.
set -euo pipefail

mode=${1:-}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
PY=${PYTHON:-python3}
DATA=${DATA:-.gpu-data/clean}
# the repository's tracked files take about 20 MiB of the 64 that travel
PACK_LIMIT_MIB=${PACK_LIMIT_MIB:-38}

pack() {
    local src=${1:-../shared/data/clean}
    rm -rf "$DATA" && mkdir -p "$DATA"
    # derain's own folder lister and image reader, so the pack holds what training would read
    PYTHONPATH=$root "$PY" - "$src" "$DATA" "$PACK_LIMIT_MIB" <<'EOF'
import sys
from pathlib import Path
from PIL import Image
from derain.io.imaging import rgb8
from derain.io import iter_images

src, dst, limit = Path(sys.argv[1]), Path(sys.argv[2]), float(sys.argv[3]) * 2**20
files = sorted(iter_images(src, recursive=True))
# All the photos, at JPEG quality 90 and at their own scale (shrinking them would change the
# streak-to-texture scale; zoom-out measured worse): each is cut to its central window of at
# most `side`×`side`, `side` lowered until the pack fits (bytes ~ pixels of the cut ones).
quality, side, min_side = 90, 1024, 256
while side >= min_side:
    total = shrunk = 0
    for i, path in enumerate(files):
        image = Image.fromarray(rgb8(path))
        w, h = image.size
        if max(w, h) > side:
            left, top = (w - min(w, side)) // 2, (h - min(h, side)) // 2
            image = image.crop((left, top, left + min(w, side), top + min(h, side)))
            shrunk += 1
        out = dst / f"{i:04d}_{path.parent.name}_{path.stem}.jpg"
        image.save(out, "JPEG", quality=quality)
        total += out.stat().st_size
    if total <= limit:
        print(
            f"{len(files)} photos -> {dst} at JPEG quality {quality}, cut to their central "
            f"{side}x{side} px at most ({shrunk} cut): {total / 2**20:.1f} MiB"
        )
        break
    for out in dst.iterdir():
        out.unlink()
    side = int(side * (limit / total) ** 0.5 * 0.97)
else:
    sys.exit(f"{src}: the photos do not fit in {limit / 2**20:.0f} MiB even at {min_side} px")
EOF
}

train() {
    local budget=${BUDGET_S:-470} batch=${BATCH:-64} lr=${LR:-3e-4} crop=${CROP:-128}
    local device=${DEVICE:-cuda} data_device=${DATA_DEVICE:-auto} seed=${SEED:-31}
    local rain_left=${RAIN_LEFT_WEIGHT:-0}
    local out=${OUT:-runs/gpu-out} models=${MODELS:-danet danet-plus} work
    work=$(mktemp -d)
    [ -d "$DATA" ] || { echo "$DATA: missing; run 'bash tools/gpu_train.sh pack' here first" >&2; exit 2; }
    local workers=$(( $(nproc) > 3 ? $(nproc) - 2 : 1 ))
    export PYTHONPATH=$root PYTHONUNBUFFERED=1
    mkdir -p "$out"
    "$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
    local model share seconds
    for model in $models; do
        share=$([ "$model" = danet ] && echo 0.4 || echo 0.6)
        seconds=$("$PY" -c "print(round($budget * $share, 1))")
        echo "$model: ${seconds}s at batch $batch, ${crop}²"
        "$PY" -m derain train --data "$DATA" --synthetic wide --recipe cpu-continue \
            --model "$model" --init "weights/$model.safetensors" --time-budget "${seconds}s" \
            --batch-size "$batch" --lr "$lr" --workers "$workers" --device "$device" \
            --seed "$seed" --set crop="$crop" --set warmup_steps=100 --set log_every=50 \
            --set data_device="$data_device" --set ckpt_every=1000000 \
            --set rain_left_weight="$rain_left" -o "$work/$model" --export "$out/$model"
        cp "$work/$model/log.csv" "$out/$model/log.csv"
    done
    rm -rf "$work"
}

bench() {  # crops/s of the data paths and the steps, and host waits per step, on the GPU
    export PYTHONPATH=$root PYTHONUNBUFFERED=1
    "$PY" benchmarks/bench_train.py --device "${DEVICE:-cuda}" --batch "${BATCH:-64}" \
        --data "$DATA" --photos 256 --out "${OUT:-runs/gpu-out}/bench_train.json"
}

case $mode in
    pack) shift; pack "$@" ;;
    bench) mkdir -p "${OUT:-runs/gpu-out}" && bench 2>&1 | tee "${OUT:-runs/gpu-out}/bench.log" ;;
    train) mkdir -p "${OUT:-runs/gpu-out}" && train 2>&1 | tee "${OUT:-runs/gpu-out}/train.log" ;;
    *) echo "usage: bash tools/gpu_train.sh pack [CLEAN_DIR] | train | bench" >&2; exit 2 ;;
esac
