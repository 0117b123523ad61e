#!/usr/bin/env bash
# One training process on this machine (all its local devices).
#
#   launch/local.sh [--dry_run] --config=configs/demo.py --workdir=runs/demo [--config.key=value ...]
#
# Every other flag goes to `python -m hyperface_jax.main` unchanged. --dry_run prints the
# command instead of running it. $PYTHON overrides the interpreter (default: .venv/bin/python).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_common.sh"

dry_run=0
args=()
for a in "$@"; do
  case "$a" in
    --dry_run) dry_run=1 ;;
    *) args+=("$a") ;;
  esac
done
require_config_and_workdir local.sh "${args[@]}"
cmd=("$PYTHON" -m hyperface_jax.main "${args[@]}")
if ((dry_run)); then
  print_cmd "${cmd[@]}"
  exit 0
fi
exec "${cmd[@]}"
