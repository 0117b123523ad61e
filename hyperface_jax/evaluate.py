r"""Runs a published benchmark on a trained run and writes the paper-style table.

  python -m hyperface_jax.evaluate --workdir=RUN --benchmark=afw|pascal_faces|fddb|... \
      [--data_dir=D] [--split=SPLIT] [--step=N] [--batch_images=8] [--set KEY=VALUE ...]

The benchmark (registry.BENCHMARKS, evaluation/benchmarks/) names a TFDS dataset built with
`python -m hyperface_jax.data.prepare NAME --manual_dir=M --data_dir=D`, its split and its
evaluator. The run's model goes through the runner of the evaluator's `inputs`
(evaluation/contract.py): "images" = the whole test-time pipeline of docs/papers.md section
1.8 (inference/analyzer.py; `--set proposals.name=selective_search` etc. change its
settings, inference/config.py), "faces" = one crop per annotated face
(evaluation/face_runner.py). Written atomically into RUN/eval/NAME/: results.json (flat
numbers, "protocol/<key>" texts), table.md (the paper's table with our row, then the
protocol; also printed) and the evaluator's plots and files (precision-recall curve; FDDB's
discrete ROC and detection-output file).

--data_dir defaults to the run's `config.data.data_dir`. Errors (unknown benchmark, a
workdir without checkpoint, a dataset not prepared, a bad split or setting) are one line on
stderr with exit status 2. In Python: `evaluate.run(workdir, benchmark, ...)`.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any, Dict, Mapping, Optional

from absl import flags, logging

from hyperface_jax import cli, registry
from hyperface_jax.evaluation import benchmarks

# This tool's flags live in their own FlagValues (as data/prepare.py), so importing the
# module defines no global flag (hyperface_jax.main defines --workdir too).
FLAGS = flags.FlagValues()
_WORKDIR = flags.DEFINE_string("workdir", None, "Training run directory.", flag_values=FLAGS)
_BENCHMARK = flags.DEFINE_string("benchmark", None, "Benchmark name.", flag_values=FLAGS)
_DATA_DIR = flags.DEFINE_string(
  "data_dir", None, "TFDS data directory (default: the run's data.data_dir).", flag_values=FLAGS
)
_SPLIT = flags.DEFINE_string("split", None, "Split (default: the benchmark's).", flag_values=FLAGS)
_STEP = flags.DEFINE_integer("step", None, "Checkpoint step (default: latest).", flag_values=FLAGS)
_BATCH = flags.DEFINE_integer("batch_images", 8, "Images per pipeline call.", flag_values=FLAGS)
_SET = flags.DEFINE_multi_string(
  "set", [], "Pipeline setting KEY=VALUE (inference/config.py), repeatable.", flag_values=FLAGS
)


class EvaluationError(Exception):
  """A usage or input problem, reported as one line (exit status 2)."""


def get_benchmark(name: str) -> benchmarks.Benchmark:
  """The registered benchmark `name`, or EvaluationError listing the known ones."""
  if name not in registry.BENCHMARKS:
    known = ", ".join(registry.BENCHMARKS.names())
    raise EvaluationError(f"unknown benchmark {name!r}; known: {known}.")
  return registry.BENCHMARKS.get(name)


def _check_run(workdir: str, step: Optional[int]):
  """(train config, checkpoint step) of a run, or EvaluationError."""
  from hyperface_jax import checkpointing
  from hyperface_jax.inference import batched

  try:
    config = batched.load_workdir_config(workdir)
    item = checkpointing.resolve_checkpoint(workdir, step)
  except (FileNotFoundError, ValueError) as e:
    raise EvaluationError(f"--workdir {workdir} is not a trained run: {e}") from None
  return config, checkpointing.checkpoint_step(item)


def _load_store(bench, split: str, data_dir: Optional[str]):
  """The split in memory (SceneStore) plus a text describing it, or EvaluationError."""
  import tensorflow as tf
  import tensorflow_datasets as tfds

  from hyperface_jax.data import (
    builders,  # noqa: F401  (registers the builders)
    scene_store,
  )

  try:  # TF only reads the data here; the accelerators are JAX's (as in hyperface_jax.main)
    tf.config.set_visible_devices([], "GPU")
    tf.config.set_visible_devices([], "TPU")
  except (RuntimeError, ValueError):  # already initialised, or no such device type
    pass

  builder = tfds.builder(bench.dataset, data_dir=data_dir)
  if not builder.is_prepared():
    raise EvaluationError(
      f"dataset {bench.dataset!r} is not prepared in {builder.data_dir}; build it with "
      f"`{bench.prepare_command(data_dir)}` (docs/datasets/{bench.dataset.split('/')[0]}.md)."
    )
  fields = dict(scene_store.FACE_FIELDS, **dict(bench.fields))
  try:
    store = scene_store.SceneStore.from_tfds(bench.dataset, split, data_dir, fields=fields)
  except ValueError as e:
    raise EvaluationError(str(e).replace("\n", " ")) from None
  order = "file order" if builder.info.disable_shuffling else "TFDS example order"
  text = (
    f"{bench.dataset} {builder.info.version}, split {split} from {builder.data_dir}: "
    f"{len(store)} images, {int(store.num_faces.sum())} annotated faces ({order})."
  )
  return store, text


def _pipeline_text(analyzer) -> str:
  from hyperface_jax.inference import config as config_lib

  cfg = getattr(analyzer, "config", None)
  if cfg is None:
    return f"detections of a caller-supplied analyzer ({type(analyzer).__name__})."
  flat = config_lib._flatten(cfg.to_dict())  # pylint: disable=protected-access
  return "FaceAnalyzer settings (inference/config.py): " + ", ".join(
    f"{k}={v}" for k, v in sorted(flat.items())
  )


def _pairs(bench, store, workdir, step, config, analyzer, overrides, batch_images, timings):
  """(pairs iterator, pipeline text) for the benchmark's `inputs` kind."""
  if bench.inputs == "images":
    from hyperface_jax.evaluation import image_runner
    from hyperface_jax.inference import analyzer as analyzer_lib

    if analyzer is None:
      try:
        analyzer = analyzer_lib.FaceAnalyzer.from_workdir(workdir, step, **overrides)
      except KeyError as e:
        raise EvaluationError(str(e).strip("'\"")) from None
    pairs = image_runner.image_pairs(
      analyzer, store, batch_images, timings=timings, **dict(bench.runner_kwargs)
    )
    return pairs, _pipeline_text(analyzer)
  if config is None:
    raise EvaluationError(
      f"benchmark {bench.name!r} runs the run's model on face crops; "
      "it needs --workdir with a checkpoint, not a stand-in analyzer."
    )
  import jax

  from hyperface_jax.evaluation import face_runner
  from hyperface_jax.inference import batched

  model, variables, _ = batched.load_variables(config, workdir, step)
  apply = jax.jit(lambda x: model.apply(variables, x, train=False))
  pairs = face_runner.face_pairs(
    apply,
    store,
    input_size=config.input_size,
    normalize=config.data.get("normalize", "minus_half"),
    batch_size=config.get("eval_batch_size", 64),
    task_names=tuple(config.get("tasks", ())) or None,
    **dict(bench.runner_kwargs),
  )
  return pairs, "one crop per annotated face, cut by its own box (evaluation/face_runner.py)."


def run(
  workdir: str,
  benchmark: str,
  data_dir: Optional[str] = None,
  split: Optional[str] = None,
  overrides: Optional[Mapping[str, Any]] = None,
  *,
  step: Optional[int] = None,
  batch_images: int = 8,
  analyzer=None,
) -> Dict[str, Any]:
  """Evaluates a run on a benchmark and writes RUN/eval/NAME/ (module docstring).

  Args:
    workdir: the training run (config.json + checkpoints/); outputs go to workdir/eval/NAME.
    benchmark: a registry.BENCHMARKS name.
    data_dir: TFDS data directory (default: the run's config.data.data_dir).
    split: split expression (default: the benchmark's).
    overrides: pipeline settings {"nms.top_k": 3, ...} ("images" benchmarks).
    step: checkpoint step (default: latest).
    batch_images: images per pipeline call.
    analyzer: optional stand-in for the run's FaceAnalyzer (anything with `detect`), used
      instead of the checkpoint; then the workdir needs no checkpoint.

  Returns:
    The results.json payload (flat numbers and "protocol/<key>" texts).

  Raises:
    EvaluationError: one-line usage or input problems.
  """
  bench = get_benchmark(benchmark)
  config, ckpt_step = (None, None) if analyzer is not None else _check_run(workdir, step)
  if data_dir is None and config is not None:
    data_dir = config.get("data", {}).get("data_dir") or None
  store, data_text = _load_store(bench, split or bench.split, data_dir)
  evaluator = bench.make_evaluator()
  timings: Dict[str, float] = {}
  pairs, pipeline_text = _pairs(
    bench, store, workdir, step, config, analyzer, dict(overrides or {}), batch_images, timings
  )
  start = time.perf_counter()
  evaluator.reset()
  for batch, outputs in pairs:
    evaluator.update(batch, outputs)
  results = {k: float(v) for k, v in evaluator.result().items()}
  elapsed = timings.get("seconds", time.perf_counter() - start)  # the pipeline's, if known
  results["seconds_per_image"] = elapsed / max(len(store), 1)
  if ckpt_step is not None:
    results["step"] = float(ckpt_step)
  protocol = dict(evaluator.protocol())
  protocol.update(data=data_text, pipeline=pipeline_text)
  protocol["seconds_per_image"] = (
    "wall-clock seconds of the test-time pipeline per image (analyzer.detect, first call's "
    "compilation included)"
    if "seconds" in timings
    else "wall-clock seconds per image of the whole evaluation loop (model and evaluator)"
  )
  out_dir = os.path.join(workdir, "eval", bench.name)
  source = "this run" + ("" if ckpt_step is None else f", step {ckpt_step}")
  bench.write_outputs(out_dir, results, protocol, evaluator, source=source)
  payload = dict(results)
  payload.update({f"protocol/{k}": v for k, v in protocol.items()})
  return payload


def main(argv) -> int:
  """In-process entry point: argv = [program, --flag=value, ...]; returns the exit status."""
  if FLAGS.is_parsed():
    FLAGS.unparse_flags()  # a second call in one process starts from the defaults
  try:
    rest = FLAGS(list(argv))
    if len(rest) > 1:
      raise EvaluationError(f"unexpected arguments {rest[1:]}")
    for name, flag in (("workdir", _WORKDIR), ("benchmark", _BENCHMARK)):
      if not flag.value:
        raise EvaluationError(f"--{name} is required")
    from hyperface_jax.inference import config as config_lib

    overrides = config_lib.parse_overrides(_SET.value)
    bench = get_benchmark(_BENCHMARK.value)
    run(
      _WORKDIR.value,
      bench.name,
      _DATA_DIR.value,
      _SPLIT.value,
      overrides,
      step=_STEP.value,
      batch_images=_BATCH.value,
    )
  except (EvaluationError, flags.Error, ValueError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  with open(os.path.join(_WORKDIR.value, "eval", bench.name, "table.md")) as f:
    print(f.read(), end="", flush=True)
  return 0


def _help() -> str:
  described = "; ".join(f"{k}: {v}" for k, v in benchmarks.describe().items())
  return f"{__doc__}\nBenchmarks: {described}\n{FLAGS.get_help()}"


def _main_logged(argv) -> int:
  logging.set_verbosity(logging.INFO)
  return main(argv)


if __name__ == "__main__":
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  cli.run(_main_logged, help_text=_help)
