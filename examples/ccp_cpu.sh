#!/usr/bin/env bash
# A real human parser trained on a CPU: Clothing Co-Parsing (CCP) from random weights, in a
# fixed wall-time budget on whatever CPU runs it.
#
#   examples/ccp_cpu.sh CCP_ROOT RUN_DIR [train.py flags...]
#
# CCP_ROOT is the CCP layout (photos/, annotations/pixel-level/, label_list.mat and
# {train,val}_id.txt lists); RUN_DIR receives the TFRecords (RUN_DIR/data), the run (config,
# checkpoints, metrics.json, contact sheet, SavedModel export) and RUN_DIR/val/metrics.json.
# The whole script takes CCP_BUDGET_MINUTES (default 30): training gets what the conversion
# leaves, less CCP_RESERVE_MINUTES (default 3) for train.py's evaluation and export and the
# paper-protocol evaluation, so a fast CPU trains more steps instead of finishing early.
# Every setting below is an ordinary train.py flag (docs/ccp.md: how each was chosen on CCP
# val); extra arguments are passed to train.py. Where internet exists, add
# --backbone-weights imagenet for the fine-tuning path.
set -euo pipefail
if [ $# -lt 2 ]; then
  echo "usage: $0 CCP_ROOT RUN_DIR [train.py flags...]" >&2
  exit 2
fi
ccp_root=$1
run_dir=$2
shift 2
here=$(cd "$(dirname "$0")/.." && pwd)
budget=${CCP_BUDGET_MINUTES:-30}
reserve=${CCP_RESERVE_MINUTES:-3}
started=$SECONDS

python "$here/tfrecords_tools/convert_ccp.py" --data "$ccp_root" --out "$run_dir/data" --workers 2
minutes=$(python -c "print(f'{max($budget - $reserve - ($SECONDS - $started) / 60, 1):.2f}')")
echo "ccp_cpu.sh: conversion took $((SECONDS - started)) s; training for $minutes minutes"
python "$here/train.py" --variant s --label-set ccp \
  --data "$run_dir/data/train-*.tfrecord" --val-data "$run_dir/data/val-*.tfrecord" \
  --backbone resnet18 --width-multiplier 0.5 --input-size 192,128 --output-stride 8 --aspp-rates 2,3,4,6 \
  --refinement-stages 0 --optimizer adam --learning-rate 0.001 --batch-size 8 --ema-decay 0.99 \
  --backbone-weights none --train-scales 1 --precision auto \
  --max-minutes "$minutes" --steps 100000 --checkpoint-every 500 --log-every 100 --run-dir "$run_dir/run" "$@"
# The paper's test protocol (scales 1/0.75/1.25 x flip, stage mean, fused at the image size).
python "$here/evaluate.py" --dataset ccp --data "$ccp_root" --split val --model "$run_dir/run" \
  --out "$run_dir/val" --no-progress
echo "ccp_cpu.sh: done in $((SECONDS - started)) s (budget $budget min)"
