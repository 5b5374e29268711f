#!/usr/bin/env bash
# A real human parser trained on a CPU: Clothing Co-Parsing (CCP) from random weights.
#
#   examples/ccp_cpu.sh CCP_ROOT RUN_DIR
#
# CCP_ROOT is the CCP layout (photos/, annotations/pixel-level/, label_list.mat and
# {train,val}_id.txt lists); RUN_DIR receives the TFRecords (RUN_DIR/data), the run (config,
# checkpoints, metrics.json, contact sheet, SavedModel export) and RUN_DIR/val/metrics.json.
# Every setting below is an ordinary train.py flag; with ImageNet weights (where internet
# exists) add --backbone-weights imagenet --backbone-depth 101 --width-multiplier 1 for the
# fine-tuning path. Extra arguments are passed to train.py (e.g. --steps 200 for a quick look).
set -euo pipefail
if [ $# -lt 2 ]; then
  echo "usage: $0 CCP_ROOT RUN_DIR [train.py flags...]" >&2
  exit 2
fi
ccp_root=$1
run_dir=$2
shift 2
here=$(cd "$(dirname "$0")/.." && pwd)

python "$here/tfrecords_tools/convert_ccp.py" --data "$ccp_root" --out "$run_dir/data" --workers 2
python "$here/train.py" --variant s --label-set ccp \
  --data "$run_dir/data/train-*.tfrecord" --val-data "$run_dir/data/val-*.tfrecord" \
  --input-size 192,128 --output-stride 8 --backbone-depth 18 --width-multiplier 0.5 \
  --backbone-weights none --refinement-stages 1 --aspp-rates 2,3,4,6 --train-scales 1 \
  --optimizer adam --learning-rate 0.001 --batch-size 8 --steps 700 \
  --checkpoint-every 200 --log-every 50 --run-dir "$run_dir/run" "$@"
# The paper's test protocol (scales 1/0.75/1.25 x flip, stage mean, fused at the image size).
python "$here/evaluate.py" --dataset ccp --data "$ccp_root" --split val --model "$run_dir/run" \
  --out "$run_dir/val" --no-progress
