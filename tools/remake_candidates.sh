#!/usr/bin/env bash
# Remake issue 35's ship candidates (docs/training-log.md, sessions 16 and 18) from the shipped
# weights, on a machine that lacks the run folders, and compare each file with the sha256 of the
# one first made. Runs outside git; about an hour on two cores. A remake on another machine is
# not bit for bit the first (session 19: run S's export differed), so score the remade files
# (validation sets and real photos) before shipping them; the training log's figures are those
# of the first files.
#
#     bash tools/remake_candidates.sh RUNS_DIR
#
# RUNS_DIR receives the run folders, their logs, the teacher cache and the two candidates:
#   RUNS_DIR/danet-plus-I-N/model.safetensors   danet-plus: run I mixed half-way with run N
#   RUNS_DIR/danet-S-mix/model.safetensors      danet: run S mixed half-way with danet v4
# Exit status 1 if a run fails.
set -euo pipefail
cd "$(dirname "$0")/.."

runs=${1:?usage: bash tools/remake_candidates.sh RUNS_DIR}
mkdir -p "$runs"
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

# check FILE SHA256: whether the remade file is the one first made (its scores carry over).
check() {
    local actual
    actual=$(sha256sum "$1" | cut -d' ' -f1)
    if [[ $actual == "$2" ]]; then
        echo "same as first made: $1"
    else
        echo "not the file first made ($2), score it: $1 ($actual)"
    fi
}

# Runs I (session 16) and S (session 18) side by side: both continue the shipped weights.
train I --model danet-plus --init danet-plus --teacher danet-plus \
    --set teacher_rain_scale=2.5 --lr 2e-4 --steps 1000 &
run_i=$!
train S --model danet --init danet --teacher danet-plus \
    --set teacher_rain_scale=3.5 --lr 2e-4 --steps 600 &
run_s=$!
wait "$run_i"
wait "$run_s"
i=$runs/I/export/model.safetensors
check "$i" 81643e76618d353774b85a126c2e1f9f3b0840e0839701cf5c74a60fd54d3e3c

# Run N (session 16): a second round from I, with I as its teacher.
train N --model danet-plus --init "$i" --teacher "$i" \
    --set teacher_rain_scale=2.5 --lr 1e-4 --steps 800 &
run_n=$!
mix danet "$runs/S/export" "$runs/danet-S-mix" danet
wait "$run_n"
check "$runs/N/export/model.safetensors" \
    6b0f6273195dc6902c1094f364f6b2edaa25b529593299b2e5393b2bef050601
mix "$i" "$runs/N/export" "$runs/danet-plus-I-N" danet-plus

check "$runs/danet-plus-I-N/model.safetensors" \
    ee477cc09ff218826e309cbe5cff2ef8857c2a5432f8e48402dfc10fa762ae37
check "$runs/danet-S-mix/model.safetensors" \
    2f55d709d8a01e357b7e736ceb7d45581e2e65599c214052a3b0f3f8fc1496cd
