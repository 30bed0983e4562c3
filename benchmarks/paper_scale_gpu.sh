#!/usr/bin/env bash
# Paper-scale MNIST-4 GNM (preset mnist4: 128 px, ~2.9M parameters, batch 32, the paper's
# schedules) trained on one GPU for a fixed wall-clock budget, then judged and pictured.
#
#   bash benchmarks/paper_scale_gpu.sh OUT [TRAIN_SECONDS=360] [EVAL_N=1000] [BENCH_STEPS=20]
#
# Writes OUT/run (config, metrics.jsonl, sample grids, checkpoint), OUT/mnist4.safetensors (fp16),
# OUT/eval (S-Acc of prior samples, AP@0.5 and AP on test scenes), OUT/show (the paper's
# pictures) and OUT/throughput.json (train / sample / infer images per second, fp32 and bf16).
# DEVICE=cpu runs the same steps on the CPU (a smoke test of this script); JUDGE_EVERY (default
# 1000) sets the steps between in-training S-Acc checks; WORKERS (default 6) the data-loader
# processes. Needs MNIST in ./data/mnist or $GNM_DATA (gnm data mnist).
set -euo pipefail
out=${1:?usage: paper_scale_gpu.sh OUT [TRAIN_SECONDS] [EVAL_N] [BENCH_STEPS]}
secs=${2:-360}
n=${3:-1000}
bench_steps=${4:-20}
device=${DEVICE:-cuda}
py=${PYTHON:-python3}
workers=${WORKERS:-6}
mkdir -p "$out"

echo "== train: preset mnist4 on $device for ${secs}s"
$py -m gnm train --preset mnist4 --out "$out/run" --set train.device="$device" \
  --set train.time_limit_s="$secs" --set train.judge_every="${JUDGE_EVERY:-1000}" \
  --set train.progress=false --set train.log_every=100 --set data.num_workers="$workers" \
  --set train.steps="${STEPS:-10000000}"
$py -m gnm export "$out/run" --out "$out/mnist4.safetensors" --fp16

echo "== eval (n=$n)"
$py -m gnm eval "$out/run" --metrics sacc,ap50,ap --n "$n" --device "$device" \
  --out "$out/eval" --quiet
$py -m gnm show "$out/run" --out "$out/show" --device "$device"

echo "== throughput ($bench_steps steps)"
$py benchmarks/train_throughput.py --device "$device" --steps "$bench_steps" \
  --json "$out/throughput.json"
