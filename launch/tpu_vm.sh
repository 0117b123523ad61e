#!/usr/bin/env bash
# Training on a Cloud TPU VM (one host or a pod slice): the same command on every worker
# over `gcloud compute tpus tpu-vm ssh --worker=all`; jax.distributed.initialize() detects
# the TPU topology, the coordinator and the process ids itself.
#
#   launch/tpu_vm.sh --tpu=NAME --zone=ZONE [--project=PROJECT] [--repo_dir=DIR] \
#       [--python=PY] [--dry_run] --config=configs/hyperface_resnet101.py \
#       --workdir=gs://BUCKET/runs/hf101 [--config.key=value ...]
#
# Every worker needs the repository at --repo_dir (default `hyperface_jax`, relative to the
# remote home) with its environment (--python, default `.venv/bin/python` inside it), and a
# workdir every worker reaches: a gs:// URL (each worker has its own disk). --dry_run prints
# the gcloud command instead of running it.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_common.sh"

usage() {
  echo "usage: launch/tpu_vm.sh --tpu=NAME --zone=ZONE [--project=PROJECT] [--repo_dir=DIR] [--python=PY] [--dry_run] --config=FILE --workdir=gs://... [main.py flags ...]" >&2
  exit 2
}

tpu=""
zone=""
project=""
repo_dir="hyperface_jax"
remote_python=".venv/bin/python"
dry_run=0
args=()
for a in "$@"; do
  case "$a" in
    --tpu=*) tpu="${a#*=}" ;;
    --zone=*) zone="${a#*=}" ;;
    --project=*) project="${a#*=}" ;;
    --repo_dir=*) repo_dir="${a#*=}" ;;
    --python=*) remote_python="${a#*=}" ;;
    --dry_run) dry_run=1 ;;
    --multihost) ;;  # always passed
    *) args+=("$a") ;;
  esac
done
if [[ -z "$tpu" || -z "$zone" ]]; then
  echo "tpu_vm.sh: error: need --tpu=NAME and --zone=ZONE (of the TPU VM)." >&2
  usage
fi
require_config_and_workdir tpu_vm.sh "${args[@]}"

remote="cd $(quote_word "$repo_dir") && $(print_cmd "$remote_python" -m hyperface_jax.main --multihost "${args[@]}")"
cmd=(gcloud compute tpus tpu-vm ssh "$tpu" "--zone=$zone")
[[ -n "$project" ]] && cmd+=("--project=$project")
cmd+=(--worker=all "--command=$remote")
if ((dry_run)); then
  print_cmd "${cmd[@]}"
  exit 0
fi
exec "${cmd[@]}"
