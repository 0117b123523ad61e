"""Choose-by-name registries for models, losses, weightings, evaluators, ...

Configs name components by string (big_vision habit, see docs/design.md);
a `Registry` maps those names to factories so that a system differs from
another by config only, never by a forked training loop.

Entries register when their module is imported (`@MODELS.register(name)`). No one keeps
a list of those modules: each registry names the packages its entries live in, and the
first lookup that misses (or `names()`, `in`) imports every module of them once.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import pkgutil
import threading
from typing import Any, Callable, Dict, Iterable, List, Sequence


def package_modules(packages: Sequence[str], exclude: Sequence[str] = ()) -> List[str]:
  """Every module of `packages` (each a package or a plain module), parents first.

  Skips modules and subpackages whose name starts with "_" (e.g. `__main__`), those in
  `exclude` (full dotted names; a subpackage's modules with it) and packages that do not
  exist (yet): `importlib.util.find_spec` finds none.
  """
  exclude = set(exclude)
  out: List[str] = []

  def walk(name: str, path) -> None:
    out.append(name)
    for info in pkgutil.iter_modules(path):
      child = f"{name}.{info.name}"
      if info.name.startswith("_") or child in exclude:
        continue
      if info.ispkg:
        walk(child, [os.path.join(info.module_finder.path, info.name)])
      else:
        out.append(child)

  for package in packages:
    try:
      spec = None if package in exclude else importlib.util.find_spec(package)
    except ModuleNotFoundError:  # its parent package does not exist either
      spec = None
    if spec is None:
      continue
    if spec.submodule_search_locations is None:
      out.append(package)
    else:
      walk(package, list(spec.submodule_search_locations))
  return out


class Registry:
  """A named table of factories, filled by importing the modules of its packages.

  Example:
    MODELS = Registry("model", packages=("hyperface_jax.models",))

    @MODELS.register("hyperface_alexnet")   # in hyperface_jax/models/hyperface.py
    class HyperFaceAlexNet(nn.Module): ...

    MODELS.get("hyperface_alexnet")          # imports hyperface_jax.models.* if needed

  Args:
    kind: what the entries are, for messages ("model").
    packages: dotted names of the packages (or modules) that define the entries; on
      the first miss of `get` / `in`, or the first `names()`, every module of them is
      imported, once (`package_modules`). Empty: only explicit imports register.
    exclude: modules or subpackages of `packages` never imported for that (e.g. a
      driver that imports the training loop).
  """

  def __init__(self, kind: str, packages: Sequence[str] = (), exclude: Sequence[str] = ()):
    self.kind = kind
    self.packages = tuple(packages)
    self.exclude = tuple(exclude)
    self._table: Dict[str, Any] = {}
    self._loaded = not self.packages
    self._loading = False
    self._lock = threading.RLock()

  def register(self, name: str) -> Callable[[Any], Any]:
    """Decorator registering `obj` under `name`; a duplicate name is an error."""

    def wrap(obj):
      if name in self._table and self._table[name] is not obj:
        raise ValueError(f"{self.kind} {name!r} is already registered (by {self._table[name]!r}).")
      self._table[name] = obj
      return obj

    return wrap

  def load_all(self) -> None:
    """Imports every module of `packages` (registering their entries); runs once.

    A failed import propagates and the next call tries again; a lookup made while the
    modules are being imported (a module that looks a name up at import time) does not
    start a second pass.
    """
    if self._loaded:
      return
    with self._lock:
      if self._loaded or self._loading:
        return
      self._loading = True
      try:
        for module in package_modules(self.packages, self.exclude):
          importlib.import_module(module)
        self._loaded = True
      finally:
        self._loading = False

  def get(self, name: str) -> Any:
    """Returns the factory called `name`, or raises naming the known ones."""
    if name not in self._table:
      self.load_all()
    try:
      return self._table[name]
    except KeyError:
      raise KeyError(f"Unknown {self.kind} {name!r}; known: {sorted(self._table)}") from None

  def names(self) -> Iterable[str]:
    self.load_all()
    return sorted(self._table)

  def __contains__(self, name: str) -> bool:
    if name not in self._table:
      self.load_all()
    return name in self._table


# Where each registry's entries live (`package_modules`; a package that does not exist yet
# is skipped). evaluation.runner drives evaluation from the training loop and imports it,
# and benchmarks have their own registry: neither is imported to find an evaluator.
MODELS = Registry("model", packages=("hyperface_jax.models",))
WEIGHTINGS = Registry("task weighting", packages=("hyperface_jax.weighting",))
LOSSES = Registry("loss", packages=("hyperface_jax.losses", "hyperface_jax.tasks"))
EVALUATORS = Registry(
  "evaluator",
  packages=("hyperface_jax.evaluation",),
  exclude=("hyperface_jax.evaluation.runner", "hyperface_jax.evaluation.benchmarks"),
)
PROPOSALS = Registry("proposal generator", packages=("hyperface_jax.inference",))
TASKS = Registry("task", packages=("hyperface_jax.tasks",))
BENCHMARKS = Registry("benchmark", packages=("hyperface_jax.evaluation.benchmarks",))
