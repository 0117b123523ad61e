# Shared by the launch scripts (sourced, not run): the Python to use, --dry_run parsing,
# quoting of the printed commands.

# The repository's venv when there is one, else `python3` on the PATH; $PYTHON overrides.
LAUNCH_REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [[ -z "${PYTHON:-}" ]]; then
  if [[ -x "$LAUNCH_REPO/.venv/bin/python" ]]; then
    PYTHON="$LAUNCH_REPO/.venv/bin/python"
  else
    PYTHON=python3
  fi
fi

# One word quoted for the shell: as is when safe, else in single quotes (a single quote
# inside becomes '\'').
quote_word() {
  if [[ "$1" =~ ^[A-Za-z0-9_./:=@%+,-]+$ ]]; then
    printf '%s' "$1"
  else
    local q="'\\''"
    printf "'%s'" "${1//\'/$q}"
  fi
}

# Prints a command as one shell line that can be copied and run.
print_cmd() {
  local out="" w
  for w in "$@"; do
    out+="$(quote_word "$w") "
  done
  printf '%s\n' "${out% }"
}

# Fails (exit 2) unless the main.py flags name a --config and a --workdir.
require_config_and_workdir() {
  local script="$1" have_config=0 have_workdir=0 a
  shift
  for a in "$@"; do
    case "$a" in
      --config=*) have_config=1 ;;
      --workdir=*) have_workdir=1 ;;
    esac
  done
  if ((!have_config || !have_workdir)); then
    echo "$script: error: need --config=FILE[:ARG] and --workdir=DIR (flags of hyperface_jax.main)." >&2
    exit 2
  fi
}
