#!/usr/bin/env bash
# Publish a finished run as a results folder: fp16 weights (+ JSON config), its training log and
# config, and `gnm eval --metrics all --n 1000` into docs/results/NAME.
#   bash benchmarks/publish_run.sh RUN_DIR NAME        (THREADS=1 by default)
set -euo pipefail
run=${1:?usage: publish_run.sh RUN_DIR NAME}
name=${2:?usage: publish_run.sh RUN_DIR NAME}
out=docs/results/$name
threads=${THREADS:-1}
test -d "$run" || { echo "publish_run.sh: $run is not a run directory" >&2; exit 2; }
mkdir -p "$out"
gnm export "$run" --out "$out/weights.safetensors" --fp16
cp "$run/metrics.jsonl" "$run/config.json" "$out/"
OMP_NUM_THREADS=$threads gnm eval "$out/weights.safetensors" --metrics all --n 1000 --out "$out"
echo "published $run as $out"
