"""Up-front checks of a run's config: absurd values fail before anything is built, with a
one-line `ConfigError` naming the key, the value and the expected form.

`train.train_and_evaluate` calls `check(config)` first; main.py turns a ConfigError into
exit status 2 without a traceback. What only the model knows (the input sizes it can take)
is checked where the model is first traced (`train.restore_or_init`), through
`model_error`.
"""

from __future__ import annotations

import math
import numbers
from typing import List

from hyperface_jax import registry


class ConfigError(ValueError):
  """A config value that cannot work; the message names the key and the expected form."""


def _get(config, dotted: str, default=None):
  node = config
  for part in dotted.split("."):
    if node is None or not hasattr(node, "get"):
      return default
    node = node.get(part, None)
  return default if node is None else node


def _number(value) -> bool:
  return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _check_int(problems, config, key, minimum):
  value = _get(config, key)
  if value is None:
    return
  if not (isinstance(value, numbers.Integral) and not isinstance(value, bool)) or value < minimum:
    problems.append(f"config.{key}={value!r}: expected an integer >= {minimum}")


def _check_range(problems, config, key, lo, hi, *, lo_open=False, hi_open=False):
  value = _get(config, key)
  if value is None:
    return
  ok = _number(value) and math.isfinite(value)
  ok = ok and (value > lo if lo_open else value >= lo) and (value < hi if hi_open else value <= hi)
  if not ok:
    left, right = "(" if lo_open else "[", ")" if hi_open else "]"
    problems.append(f"config.{key}={value!r}: expected a number in {left}{lo}, {hi}{right}")


def _check_name(problems, config, key, table, what):
  value = _get(config, key)
  if value is None:
    return
  if value not in table:
    problems.append(f"config.{key}={value!r}: unknown {what}; known: {sorted(table.names())}")


COMPUTE_DTYPES = ("float32", "bfloat16")


def _check_compute_dtype(problems, config) -> None:
  """config.compute_dtype: a known name, and a model with a `dtype` field unless float32."""
  value = _get(config, "compute_dtype")
  if value is None or value == "float32":
    return
  if value not in COMPUTE_DTYPES:
    problems.append(f"config.compute_dtype={value!r}: expected one of {list(COMPUTE_DTYPES)}")
    return
  name = _get(config, "model_name")
  if name is None or name not in registry.MODELS:
    return  # reported by the model_name check
  if "dtype" not in getattr(registry.MODELS.get(name), "__dataclass_fields__", {}):
    problems.append(
      f"config.compute_dtype={value!r}: model {name!r} has no computation dtype "
      "(no `dtype` field); use compute_dtype='float32'"
    )


def problems(config) -> List[str]:
  """Every problem found in `config` (empty when none)."""
  out: List[str] = []
  lr = _get(config, "lr")
  if lr is not None and not (_number(lr) and math.isfinite(lr) and lr > 0):
    out.append(f"config.lr={lr!r}: expected a finite learning rate > 0 (e.g. 0.01)")
  for key in ("batch_size", "eval_batch_size", "log_every", "eval_every", "checkpoint_every",
              "keep_checkpoints", "input_size", "data.regions_per_scene",
              "data.eval_regions_per_scene", "data.prefetch"):  # fmt: skip
    _check_int(out, config, key, 1)
  for key in ("total_steps", "seed", "data.workers"):
    _check_int(out, config, key, 0)
  _check_range(out, config, "model.dropout", 0.0, 1.0, hi_open=True)
  _check_range(out, config, "model.width", 0.0, math.inf, lo_open=True, hi_open=True)
  _check_range(out, config, "data.flip_prob", 0.0, 1.0)
  _check_range(out, config, "data.positive_fraction", 0.0, 1.0)
  _check_name(out, config, "model_name", registry.MODELS, "model")
  _check_name(out, config, "weighting.name", registry.WEIGHTINGS, "task weighting")
  _check_compute_dtype(out, config)
  tasks = _get(config, "tasks")
  if tasks is not None:
    if isinstance(tasks, str) or not len(tasks):
      out.append(f"config.tasks={tasks!r}: expected a non-empty tuple of task names")
    else:
      unknown = [t for t in tasks if t not in registry.TASKS]
      if unknown:
        out.append(
          f"config.tasks: unknown task(s) {unknown}; known: {sorted(registry.TASKS.names())}"
        )
  normalize = _get(config, "data.normalize")
  if normalize is not None:
    from hyperface_jax.data import preprocess  # pylint: disable=g-import-not-at-top

    if normalize not in preprocess.NORMALIZE_MODES:
      out.append(
        f"config.data.normalize={normalize!r}: expected one of {list(preprocess.NORMALIZE_MODES)}"
      )
  return out


def check(config) -> None:
  """Raises ConfigError naming the first problem of `config` (and how many more)."""
  found = problems(config)
  if found:
    more = f" (and {len(found) - 1} more problem(s): {'; '.join(found[1:])})" if found[1:] else ""
    raise ConfigError(found[0] + more + ".")


def model_error(config, error: Exception) -> ConfigError:
  """A one-line ConfigError for a model that refused the config while being traced (an
  input size it cannot take, a head shape)."""
  text = " ".join(str(error).split())
  return ConfigError(
    f"config.input_size={_get(config, 'input_size')!r} / config.model "
    f"(model_name={_get(config, 'model_name')!r}): the model cannot be built: {text}"
  )
