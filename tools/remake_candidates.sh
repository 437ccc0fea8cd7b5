#!/usr/bin/env bash
# Remake the shipped danet-plus v4 and danet v5 (weights/README.md; runs I and S of
# docs/training-log.md, sessions 16, 18 and 20) from the weights they started from, taken from
# the repository's history, and compare each file with the shipped one. Runs outside git;
# about 55 minutes on two cores (I and S side by side). A remake on another machine is not bit
# for bit the shipped file (the machine of session 16 gave other digests than that of sessions
# 19 and 20, within 0.001 on every score), so score a remade file before trusting its digest.
#
#     bash tools/remake_candidates.sh RUNS_DIR
#
# RUNS_DIR receives the run folders, their logs, the teacher cache and the two files:
#   RUNS_DIR/I/export/model.safetensors         danet-plus v4: run I
#   RUNS_DIR/danet-S-mix/model.safetensors      danet v5: run S mixed half-way with danet v4
# Exit status 1 if a run fails.
set -euo pipefail
cd "$(dirname "$0")/.."

runs=${1:?usage: bash tools/remake_candidates.sh RUNS_DIR}
mkdir -p "$runs"
# The starting points: danet-plus v3 (also the teacher) and danet v4, as shipped in 3fdfb23.
plus3=$runs/v3-danet-plus.safetensors
danet4=$runs/v4-danet.safetensors
git show 3fdfb23:weights/danet-plus.safetensors >"$plus3"
git show 3fdfb23:weights/danet.safetensors >"$danet4"
common=(--data ../shared/data/clean --synthetic wide --recipe cpu-continue
    --unlabelled ../shared/data/real-pool --set unlabelled_share=0.5 --set teacher_flips=true
    --set teacher_streaks_only=true --set "teacher_cache=$runs/teacher-cache" --set threads=1)

# train NAME ARGS...: one run on one thread, at the lowest priority, its EMA weights exported.
train() {
    local name=$1
    shift
    nice -n 19 derain train "${common[@]}" "$@" -o "$runs/$name" --export "$runs/$name/export" \
        >"$runs/$name.log" 2>&1
}

# mix START END OUT VARIANT: half-way between two networks in weight space.
mix() {
    PYTHONPATH=. python tools/mix_weights.py "$1" "$2" 0.5 "$3" --variant "$4" >/dev/null
}

# check FILE SHA256: whether the remade file is the shipped one.
check() {
    local actual
    actual=$(sha256sum "$1" | cut -d' ' -f1)
    if [[ $actual == "$2" ]]; then
        echo "same as shipped: $1"
    else
        echo "not the shipped file ($2), score it: $1 ($actual)"
    fi
}

# Runs I (session 16) and S (session 18) side by side.
train I --model danet-plus --init "$plus3" --teacher "$plus3" \
    --set teacher_rain_scale=2.5 --lr 2e-4 --steps 1000 &
run_i=$!
train S --model danet --init "$danet4" --teacher "$plus3" \
    --set teacher_rain_scale=3.5 --lr 2e-4 --steps 600 &
run_s=$!
wait "$run_i"
wait "$run_s"
mix "$danet4" "$runs/S/export" "$runs/danet-S-mix" danet

check "$runs/I/export/model.safetensors" \
    fc9e2b16a5bd0b35da08adcd4164f0b0b671ca14f8d9fdb90434e51880fa6501
check "$runs/danet-S-mix/model.safetensors" \
    2e0364be155577b14d02e0f5ef64314294d110b3f43682f1fe358c96ee15804a
