"""Benchmark declarations: a dataset split, its evaluator, and the paper's table.

A `Benchmark` is what `python -m hyperface_jax.evaluate --benchmark=NAME` runs
(hyperface_jax/evaluate.py); one frozen dataclass per benchmark, registered in
`registry.BENCHMARKS` by `register(...)`:

  register(Benchmark(
    name="afw", dataset="afw", split="test",            # TFDS name ("name/config" too)
    evaluator="voc_detection_ap", evaluator_kwargs={...},  # a registry.EVALUATORS entry
    inputs="images",                                     # the evaluator's `inputs` kind
    fields={},                                           # extra per-face fields to load
    table=PaperTable(title=..., columns=(Column("AP (%)", "detection/ap"),),
                     rows=(PaperRow("HyperFace (AlexNet)", (97.9,), "docs/papers.md section 1.14 [M]"),),
                     notes=("...",)),
  ))

Fields:
  name        registry key and output folder RUN/eval/NAME/.
  dataset     TFDS dataset built by `python -m hyperface_jax.data.prepare DATASET`.
  split       default split (any TFDS split expression: "fold01+fold02", "test[:100]").
  evaluator   registry.EVALUATORS name; `evaluator_kwargs` its constructor arguments.
  inputs      "images" (evaluation/image_runner.py, the whole test-time pipeline) or
              "faces" (evaluation/face_runner.py, one crop per annotated face); checked
              against the evaluator's own `inputs`.
  fields      {per-face field: (per-face shape, numpy dtype)} loaded beside the core scene
              fields (data/scene_store.py FACE_FIELDS), e.g. FDDB's "ellipse": ((5,), f32).
  runner_kwargs  extra keyword arguments of the runner (e.g. face_runner's default_box).
  table       the paper's table (PaperTable): one Column per metric, each naming the result
              key our row shows and its scale (100 turns fractions into %, 1 keeps degrees);
              PaperRows hold the published values per column (a number, a text such as
              "90.1*", or None for "-") and their source, "docs/papers.md section X [tag]";
              notes are printed under the table, before the protocol.

Benchmarks of face-level datasets (AFLW, 300-W, MAFL, MTFL, CelebA, LFWA) fit the same
declaration with inputs="faces" and several columns (NME x100 per yaw bin, pose MAE with
scale 1, ...). `Benchmark.write_outputs` writes results.json, table.md and the evaluator's
plots (`plots(out_dir)`) and other files (`write_files(out_dir)`), both optional
evaluator methods returning the paths they wrote, all atomically: everything is written
into a temporary folder inside out_dir first, then each file is renamed into place.

Modules of this package are imported at the bottom of this file, which registers their
benchmarks (until registry.BENCHMARKS loads this package by itself).
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
import pkgutil
import shutil
import tempfile
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from hyperface_jax import registry

Published = Union[float, str, None]


@dataclasses.dataclass(frozen=True)
class Column:
  """One metric column: header, the result key of our row, its scale and decimals."""

  header: str
  key: Optional[str]
  scale: float = 100.0
  digits: int = 2

  def format(self, results: Mapping[str, float]) -> str:
    value = None if self.key is None else results.get(self.key)
    return "-" if value is None else f"{value * self.scale:.{self.digits}f}"


@dataclasses.dataclass(frozen=True)
class PaperRow:
  """A published result: method name, one value per column, and its citation."""

  method: str
  values: Tuple[Published, ...]
  source: str


@dataclasses.dataclass(frozen=True)
class PaperTable:
  """The paper's table: title, columns, published rows, notes printed under it."""

  title: str
  columns: Tuple[Column, ...]
  rows: Tuple[PaperRow, ...]
  notes: Tuple[str, ...] = ()

  def __post_init__(self):
    for row in self.rows:
      if len(row.values) != len(self.columns):
        raise ValueError(
          f"{self.title!r}: row {row.method!r} has {len(row.values)} values for "
          f"{len(self.columns)} columns."
        )


def _published(value: Published) -> str:
  if value is None:
    return "-"
  return value if isinstance(value, str) else f"{value:g}"


@dataclasses.dataclass(frozen=True)
class Benchmark:
  """A dataset split, its evaluator and the paper's table (module docstring)."""

  name: str
  dataset: str
  split: str
  evaluator: str
  table: PaperTable
  evaluator_kwargs: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  inputs: str = "images"
  fields: Mapping[str, Tuple[Tuple[int, ...], Any]] = dataclasses.field(default_factory=dict)
  runner_kwargs: Mapping[str, Any] = dataclasses.field(default_factory=dict)

  def prepare_command(self, data_dir: Optional[str] = None) -> str:
    """The command that builds this benchmark's dataset."""
    return (
      f"python -m hyperface_jax.data.prepare {self.dataset} --manual_dir=M "
      f"--data_dir={data_dir or 'D'}"
    )

  def make_evaluator(self):
    """A fresh evaluator (registry.EVALUATORS), checked against the contract and `inputs`."""
    from hyperface_jax.evaluation import contract

    cls = registry.EVALUATORS.get(self.evaluator)
    contract.check(cls, self.evaluator)
    if cls.inputs != self.inputs:
      raise TypeError(
        f"Benchmark {self.name!r} feeds {self.inputs!r} pairs but evaluator "
        f"{self.evaluator!r} takes {cls.inputs!r}."
      )
    return cls(**dict(self.evaluator_kwargs))

  def table_markdown(
    self, results: Mapping[str, float], protocol: Mapping[str, str], source: str = "this run"
  ) -> str:
    """The paper's table with our row, then its notes and the protocol of every number.

    Args:
      results: flat results of the evaluator.
      protocol: {key or prefix: text} (the evaluator's protocol plus data and pipeline).
      source: the "source" cell of our row.

    Returns:
      Markdown text.
    """
    t = self.table
    head = ["method"] + [c.header for c in t.columns] + ["source"]
    lines = [f"### {t.title}", "", "| " + " | ".join(head) + " |"]
    lines.append("|" + "---|" * len(head))
    for row in t.rows:
      cells = [row.method] + [_published(v) for v in row.values] + [row.source]
      lines.append("| " + " | ".join(cells) + " |")
    ours = ["hyperface_jax (this run)"] + [c.format(results) for c in t.columns] + [source]
    lines.append("| " + " | ".join(ours) + " |")
    lines.append("")
    for note in t.notes:  # one paragraph each
      lines += [note, ""]
    lines.append("Protocol:")
    lines += [f"- `{k}`: {v}" for k, v in sorted(protocol.items())]
    return "\n".join(lines) + "\n"

  def write_outputs(
    self,
    out_dir: str,
    results: Mapping[str, float],
    protocol: Mapping[str, str],
    evaluator=None,
    source: str = "this run",
  ) -> List[str]:
    """Writes results.json, table.md and the evaluator's plots and files into out_dir.

    Args:
      out_dir: RUN/eval/NAME (created).
      results: flat numbers (the evaluator's result plus run-level numbers such as step).
      protocol: {key: text}; stored in results.json as "protocol/<key>".
      evaluator: the evaluator whose optional `plots(dir)` / `write_files(dir)` are called.
      source: the "source" cell of our table row.

    Returns:
      The final paths written (results.json, table.md, then the evaluator's files).
    """
    os.makedirs(out_dir, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".tmp-", dir=out_dir)
    try:
      payload = {k: float(v) for k, v in results.items()}
      payload.update({f"protocol/{k}": str(v) for k, v in protocol.items()})
      with open(os.path.join(tmp, "results.json"), "w") as f:
        json.dump(payload, f, indent=2, sort_keys=True)
      with open(os.path.join(tmp, "table.md"), "w") as f:
        f.write(self.table_markdown(results, protocol, source))
      written = ["results.json", "table.md"]
      for method in ("plots", "write_files"):
        if evaluator is not None and callable(getattr(evaluator, method, None)):
          written += [os.path.relpath(p, tmp) for p in getattr(evaluator, method)(tmp)]
      for name in written:
        os.replace(os.path.join(tmp, name), os.path.join(out_dir, name))
    finally:
      shutil.rmtree(tmp, ignore_errors=True)
    return [os.path.join(out_dir, name) for name in written]


def register(benchmark: Benchmark) -> Benchmark:
  """Registers `benchmark` under its name in registry.BENCHMARKS; returns it."""
  return registry.BENCHMARKS.register(benchmark.name)(benchmark)


def load_all(names: Sequence[str] = ()) -> None:
  """Imports the modules of this package (all, or `names`), registering their benchmarks."""
  for info in pkgutil.iter_modules(__path__):
    if not info.name.startswith("_") and (not names or info.name in names):
      importlib.import_module(f"{__name__}.{info.name}")


def describe() -> Dict[str, str]:
  """{name: "dataset split -> evaluator"} of the registered benchmarks (for --help)."""
  out = {}
  for name in registry.BENCHMARKS.names():
    b = registry.BENCHMARKS.get(name)
    out[name] = f"{b.dataset} {b.split} -> {b.evaluator}"
  return out


# Registers the benchmarks of this package's modules (detection, and the face-level ones as
# they land) until registry.BENCHMARKS loads them itself.
load_all()
