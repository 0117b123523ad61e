"""Choose-by-name registries for models, losses, weightings, evaluators, ...

Configs name components by string (big_vision habit, see docs/design.md);
a `Registry` maps those names to factories so that a system differs from
another by config only, never by a forked training loop.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Iterable


class Registry:
  """A named table of factories.

  Example:
    MODELS = Registry("model")

    @MODELS.register("hyperface_alexnet")
    class HyperFaceAlexNet(nn.Module): ...

    MODELS.get("hyperface_alexnet")
  """

  def __init__(self, kind: str):
    self.kind = kind
    self._table: Dict[str, Any] = {}

  def register(self, name: str) -> Callable[[Any], Any]:
    """Decorator registering `obj` under `name`; a duplicate name is an error."""

    def wrap(obj):
      if name in self._table and self._table[name] is not obj:
        raise ValueError(f"{self.kind} {name!r} is already registered (by {self._table[name]!r}).")
      self._table[name] = obj
      return obj

    return wrap

  def get(self, name: str) -> Any:
    """Returns the factory called `name`, or raises naming the known ones."""
    try:
      return self._table[name]
    except KeyError:
      raise KeyError(f"Unknown {self.kind} {name!r}; known: {sorted(self._table)}") from None

  def names(self) -> Iterable[str]:
    return sorted(self._table)

  def __contains__(self, name: str) -> bool:
    return name in self._table


MODELS = Registry("model")
WEIGHTINGS = Registry("task weighting")
LOSSES = Registry("loss")
EVALUATORS = Registry("evaluator")
PROPOSALS = Registry("proposal generator")
