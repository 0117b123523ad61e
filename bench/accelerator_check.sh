#!/usr/bin/env bash
# Accelerator check: train images/s and MFU of HyperFace-AlexNet (batch 256) and
# HyperFace-ResNet-101 (batch 128) in bfloat16 (float32 parameters), data-parallel over all
# devices (bench/model_flops.py), and the full-image pipeline's latency on 640x480 images
# (bench/pipeline_latency.py, the configured pipeline), printed as one table with the
# expectations of bench/accelerator_expect.py (peak bf16 FLOP/s x 40 % MFU).
#
#   bash bench/accelerator_check.sh [--workdir=runs/demo] [--out=DIR]   # GPU / TPU, < 8 min
#   bash bench/accelerator_check.sh --cpu-smoke                         # this script works
#
# --workdir: a trained HyperFace workdir for the pipeline (default: an untrained workdir of
# configs/demo.py, written first: the same programs and shapes; only the detections, hence
# the proposals kept after the network, differ). --out: where the JSON rows go (default: a
# new temporary folder). --cpu-smoke: tiny configs (configs/smoke.py, hyperface_resnet101:cpu),
# batches of 8 and 4, 2 timed steps, a pipeline batch of 2: a couple of minutes on a CPU.
# PYTHON (default .venv/bin/python) runs the Python parts.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON="${PYTHON:-.venv/bin/python}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"

mode=accelerator
workdir=""
out=""
for arg in "$@"; do
  case "$arg" in
    --cpu-smoke) mode=cpu-smoke ;;
    --workdir=*) workdir="${arg#*=}" ;;
    --out=*) out="${arg#*=}" ;;
    -h | --help)
      sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    *)
      echo "accelerator_check.sh: unknown argument $arg (see --help)" >&2
      exit 2
      ;;
  esac
done
out="${out:-$(mktemp -d)}"
mkdir -p "$out"

if [[ $mode == cpu-smoke ]]; then
  alexnet=smoke alexnet_batch=8 resnet=hyperface_resnet101:cpu resnet_batch=4
  train_steps=2 pipeline_config=smoke pipeline_batch=2 repeats=1
else
  alexnet=hyperface_alexnet alexnet_batch=256 resnet=hyperface_resnet101 resnet_batch=128
  train_steps=20 pipeline_config=demo pipeline_batch=16 repeats=3
fi

start=$SECONDS
stamp() { echo "[accelerator_check +$((SECONDS - start)) s] $*" >&2; }

devices="$("$PYTHON" -c 'import jax; print(len(jax.devices()), "x", jax.devices()[0].device_kind)')"
stamp "devices: $devices"
index=0
for pair in "$alexnet:$alexnet_batch" "$resnet:$resnet_batch"; do
  config="${pair%:*}" batch="${pair##*:}"
  index=$((index + 1))
  stamp "train step: $config, bfloat16, global batch $batch, all devices"
  "$PYTHON" bench/model_flops.py --configs="$config" --dtype=bfloat16 --devices=0 \
    --batch="$batch" --steps="$train_steps" --json="$out/train_$index.json"
done
"$PYTHON" - "$out" <<'EOF'
import glob, json, os, sys
files = sorted(glob.glob(os.path.join(sys.argv[1], "train_*.json")))
rows = [r for f in files for r in json.load(open(f))]
json.dump(rows, open(os.path.join(sys.argv[1], "train.json"), "w"), indent=1)
EOF

if [[ -z $workdir ]]; then
  workdir="$out/workdir_$pipeline_config"
  stamp "untrained workdir of configs/$pipeline_config.py for the pipeline: $workdir"
  "$PYTHON" -c "import sys; sys.path.insert(0, 'bench'); import cold_start; \
cold_start.make_workdir('$pipeline_config', '$workdir')"
fi
stamp "pipeline latency: $workdir, the configured pipeline, batch $pipeline_batch"
"$PYTHON" bench/pipeline_latency.py --workdir="$workdir" --variant="configured pipeline:" \
  --repeats="$repeats" --batch="$pipeline_batch" --output="$out/pipeline.json"

stamp "done; rows in $out"
"$PYTHON" bench/accelerator_expect.py --measured="$out/train.json" --pipeline="$out/pipeline.json"
