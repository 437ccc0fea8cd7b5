#!/usr/bin/env bash
# Issue 26's GPU measurements in one device call of at most 8 minutes (benchmarks/gpu_suite.py).
#
# The GPU machine gets a copy of the repository and what `carry` names (at most 64 MiB in
# all); it has python3 with torch, numpy, pillow, safetensors, typer and onnxruntime (CPU
# only) but no `derain` install and no PyAV, so the data and PyAV's wheel travel in ignored
# folders and the code runs from the checkout:
#
#   here:   bash benchmarks/gpu_suite.sh pack     # Rain12 -> .gpu-data/Rain12, PyAV -> .whl
#           OFFICIAL=~/src/DANet bash benchmarks/gpu_suite.sh pack   # + the authors' code
#   there:  device run, carry [".gpu-data", ".whl"], timeout_s 480 (the suite's budget is
#           420 s; BUDGET_S overrides it):
#           bash benchmarks/gpu_suite.sh run
#   back:   $OUT/gpu-suite.json and $OUT/gpu-suite.log; copy the JSON to benchmarks/results/.
#
# .gpu-data and .whl are ignored (.gitignore): the validation set never enters the repository.
# Test here on the CPU: bash benchmarks/gpu_suite.sh run --device cpu --tiny --data DIR --out F
set -euo pipefail

mode=${1:-}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
PY=${PYTHON:-python3}
DATA=${DATA:-.gpu-data}
#: The repository, the data and the wheels must travel in 64 MiB.
LIMIT_MIB=${LIMIT_MIB:-64}
AV_VERSION=${AV_VERSION:-}

pack() {
    local val=${1:-../shared/data/val/Rain12}
    rm -rf "$DATA/Rain12" "$DATA/official" && mkdir -p "$DATA"
    cp -r "$val" "$DATA/Rain12"
    if [ -n "${OFFICIAL:-}" ]; then
        mkdir -p "$DATA/official" && cp "$OFFICIAL"/*.py "$DATA/official/"
    fi
    rm -rf .whl && mkdir -p .whl
    "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
        --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
        -d .whl "av${AV_VERSION:+==$AV_VERSION}" || echo "PyAV wheel not fetched: video is skipped"
    local total
    total=$(( ($(git ls-files -z | xargs -0 du -cb | tail -1 | cut -f1) \
        + $(du -sb "$DATA" .whl | awk '{s += $1} END {print s}')) / 1048576 ))
    echo "repository + $DATA + .whl: $total MiB (limit $LIMIT_MIB)"
    [ "$total" -le "$LIMIT_MIB" ] || { echo "too large to travel" >&2; exit 1; }
}

run() {
    export PYTHONPATH=$root PYTHONUNBUFFERED=1
    if compgen -G ".whl/*.whl" > /dev/null; then
        "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
            --target /tmp/gpu-suite-site .whl/*.whl && export PYTHONPATH=$root:/tmp/gpu-suite-site
    fi
    local out=${OUT:-runs/gpu-suite} official=()
    out=$(mkdir -p "$out" && cd "$out" && pwd)
    [ -f "$DATA/official/DANet.py" ] && official=(--official "$DATA/official")
    cd benchmarks
    "$PY" gpu_suite.py --data "$root/$DATA/Rain12" "${official[@]}" \
        --out "$out/gpu-suite.json" --budget-s "${BUDGET_S:-420}" "$@" 2>&1 | tee "$out/gpu-suite.log"
}

case $mode in
    pack) shift; pack "$@" ;;
    run) shift; run "$@" ;;
    *) echo "usage: bash benchmarks/gpu_suite.sh pack [RAIN12_DIR] | run [gpu_suite.py options]" >&2; exit 2 ;;
esac
