#!/usr/bin/env bash
# Clothing parsing AND body joints from one photo, trained on a CPU: the `sp` variant on
# Clothing Co-Parsing (parsing only) + Fashionista (parsing + 14 joints) together, in a
# fixed wall-time budget on whatever CPU runs it.
#
#   examples/fashion_cpu.sh CCP_ROOT FASHIONISTA_ROOT RUN_DIR [train.py flags...]
#
# RUN_DIR receives the TFRecords (RUN_DIR/ccp, RUN_DIR/fashionista), the run (RUN_DIR/run:
# config, checkpoints, metrics.json, contact sheet, SavedModel) and the paper-protocol scores
# of both val splits (RUN_DIR/val-ccp/metrics.json, RUN_DIR/val-fashionista/metrics.json).
# The whole script takes FASHION_BUDGET_MINUTES (default 30): training gets what the
# conversions leave, less FASHION_RESERVE_MINUTES (default 4) for train.py's evaluation and
# export and the two evaluations, so a fast CPU trains more steps instead of finishing early.
# The trunk starts from the shipped `ccp-small` (trained by this project on CCP's train split
# only; FASHION_INIT=none trains from random weights, FASHION_INIT=DIR from another model).
# The joints are Fashionista's 14 (--keypoint-set defaults to the records' set); a CCP photo has
# no joints, so its pose loss is exactly 0 (task-presence masks). Every setting is
# an ordinary train.py flag (docs/fashion.md: how each was chosen on the val splits); extra
# arguments are passed to train.py.
set -euo pipefail
if [ $# -lt 3 ]; then
  echo "usage: $0 CCP_ROOT FASHIONISTA_ROOT RUN_DIR [train.py flags...]" >&2
  exit 2
fi
ccp_root=$1
fashionista_root=$2
run_dir=$3
shift 3
here=$(cd "$(dirname "$0")/.." && pwd)
budget=${FASHION_BUDGET_MINUTES:-30}
reserve=${FASHION_RESERVE_MINUTES:-4}
init=${FASHION_INIT:-ccp-small}
started=$SECONDS

python "$here/tfrecords_tools/convert_ccp.py" --data "$ccp_root" --out "$run_dir/ccp" --workers 2
python "$here/tfrecords_tools/convert_fashionista.py" --data "$fashionista_root" --out "$run_dir/fashionista" --workers 2
minutes=$(python -c "print(f'{max($budget - $reserve - ($SECONDS - $started) / 60, 1):.2f}')")
echo "fashion_cpu.sh: conversion took $((SECONDS - started)) s; training for $minutes minutes"
if [ "$init" = none ]; then
  start=(--backbone-weights none --backbone resnet18 --width-multiplier 0.5)
else
  start=(--init-from "$init")
fi
python "$here/train.py" --variant sp --label-set ccp \
  --data "$run_dir/ccp/train-*.tfrecord" "$run_dir/fashionista/train-*.tfrecord" \
  --val-data "$run_dir/fashionista/val-*.tfrecord" "${start[@]}" \
  --input-size 192,128 --output-stride 8 --aspp-rates 2,3,4,6 --refinement-stages 0 --optimizer adam \
  --learning-rate 0.001 --batch-size 8 --ema-decay 0.99 --train-scales 1 --loss-weights 1,0.1,0.6 \
  --precision auto --max-minutes "$minutes" --steps 100000 --checkpoint-every 500 --log-every 100 \
  --run-dir "$run_dir/run" "$@"
# The paper's test protocol (scales 1/0.75/1.25 x flip, stage mean, fused at the image size).
python "$here/evaluate.py" --dataset ccp --data "$ccp_root" --split val --model "$run_dir/run" \
  --out "$run_dir/val-ccp" --no-progress
python "$here/evaluate.py" --dataset fashionista --data "$fashionista_root" --split val --model "$run_dir/run" \
  --out "$run_dir/val-fashionista" --no-progress
echo "fashion_cpu.sh: done in $((SECONDS - started)) s (budget $budget min)"
