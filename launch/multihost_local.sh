#!/usr/bin/env bash
# N training processes on this machine, joined by jax.distributed over localhost: the
# multi-host code path (per-process rows of each global batch, cross-process collectives,
# multi-process orbax checkpoints) without a cluster. CPU only: each process gets K fake
# CPU devices, so the global mesh has N x K devices.
#
#   launch/multihost_local.sh --num_processes=N [--devices_per_process=K] [--log_dir=DIR] \
#       [--dry_run] --config=configs/smoke.py --workdir=/tmp/run [--config.key=value ...]
#
# Every process runs `python -m hyperface_jax.main --multihost` with the other flags; the
# coordinator is 127.0.0.1 on a free port. Output lines are prefixed "[process I] " (or, with
# --log_dir, go to DIR/process_I.log). The script waits for all processes; when one fails,
# the others are killed (a peer that is gone would leave them blocked in a collective) and
# the script exits with the failed process's status. SIGTERM / SIGINT sent to the script are
# forwarded to every process (each saves a checkpoint at the next step boundary, exit 0).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_common.sh"

usage() {
  echo "usage: launch/multihost_local.sh --num_processes=N [--devices_per_process=K] [--log_dir=DIR] [--dry_run] --config=FILE --workdir=DIR [main.py flags ...]" >&2
  exit 2
}

num_processes=""
devices_per_process=1
log_dir=""
dry_run=0
args=()
for a in "$@"; do
  case "$a" in
    --num_processes=*) num_processes="${a#*=}" ;;
    --devices_per_process=*) devices_per_process="${a#*=}" ;;
    --log_dir=*) log_dir="${a#*=}" ;;
    --dry_run) dry_run=1 ;;
    --multihost) ;;  # always passed
    *) args+=("$a") ;;
  esac
done
if ! [[ "$num_processes" =~ ^[1-9][0-9]*$ ]]; then
  echo "multihost_local.sh: error: --num_processes must be a positive integer (got '${num_processes}')." >&2
  usage
fi
if ! [[ "$devices_per_process" =~ ^[1-9][0-9]*$ ]]; then
  echo "multihost_local.sh: error: --devices_per_process must be a positive integer (got '${devices_per_process}')." >&2
  usage
fi
require_config_and_workdir multihost_local.sh "${args[@]}"

port="$("$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
# Any device count already in XLA_FLAGS (e.g. a test environment's) is replaced.
xla_flags="$(sed -E 's/--xla_force_host_platform_device_count=[0-9]+//g; s/^ +| +$//g' <<<"${XLA_FLAGS:-}")"
xla_flags="${xla_flags:+$xla_flags }--xla_force_host_platform_device_count=$devices_per_process"

process_cmd() {  # the command of process $1, as words
  cmd=(env
    JAX_PLATFORMS=cpu
    "XLA_FLAGS=$xla_flags"
    JAX_CPU_COLLECTIVES_IMPLEMENTATION=gloo
    "JAX_COORDINATOR_ADDRESS=127.0.0.1:$port"
    "JAX_NUM_PROCESSES=$num_processes"
    "JAX_PROCESS_ID=$1"
    "$PYTHON" -m hyperface_jax.main --multihost "${args[@]}")
}

if ((dry_run)); then
  for ((i = 0; i < num_processes; i++)); do
    process_cmd "$i"
    print_cmd "${cmd[@]}"
  done
  exit 0
fi

[[ -n "$log_dir" ]] && mkdir -p "$log_dir"
declare -A alive=()  # pid -> process index
for ((i = 0; i < num_processes; i++)); do
  process_cmd "$i"
  if [[ -n "$log_dir" ]]; then
    "${cmd[@]}" >"$log_dir/process_$i.log" 2>&1 &
  else
    "${cmd[@]}" > >(sed -u "s/^/[process $i] /") 2> >(sed -u "s/^/[process $i] /" >&2) &
  fi
  alive[$!]=$i
done

forward() {  # a signal to the launcher goes to every live process
  local p
  echo "multihost_local.sh: got SIG$1; forwarding it to ${#alive[@]} process(es)." >&2
  for p in "${!alive[@]}"; do kill "-$1" "$p" 2>/dev/null || true; done
}
trap 'forward TERM' TERM
trap 'forward INT' INT

# Polls instead of `wait -n`: bash may have reaped and reported a child before `wait -n`
# asks for it ("no such job"), while `wait PID` always returns a finished child's status.
status=0
while ((${#alive[@]})); do
  for pid in "${!alive[@]}"; do
    kill -0 "$pid" 2>/dev/null && continue  # still running
    rc=0
    wait "$pid" || rc=$?
    index="${alive[$pid]}"
    unset "alive[$pid]"
    if ((rc != 0 && status == 0)); then
      status=$rc
      echo "multihost_local.sh: process $index (pid $pid) exited with status $rc; killing the other ${#alive[@]} process(es)." >&2
      for p in "${!alive[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
    fi
  done
  ((${#alive[@]})) && sleep 0.2
done
wait  # the output filters
exit "$status"
