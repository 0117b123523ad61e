"""Functional model surgery on parameter trees (issue 4 item 4; docs/surgery.md).

Pure functions on nested dicts of arrays: flatten/unflatten with "a/b/c" names,
merge a loaded tree into a freshly initialised one (listing every missing,
unexpected and mis-shaped name in one error), re-initialise or replace
subtrees, name parameter groups by regex (freeze masks) and print an overview.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np


def flatten(tree: Mapping[str, Any], sep: str = "/") -> Dict[str, Any]:
  """Flattens a nested mapping into {"a/b/c": leaf} (leaves kept as they are).

  Args:
    tree: nested dict (or FrozenDict) of arrays.
    sep: separator joining the keys.

  Returns:
    A flat dict, depth first in the keys' insertion order.
  """
  flat: Dict[str, Any] = {}

  def visit(node, prefix):
    if isinstance(node, Mapping):
      for key, child in node.items():
        key = str(key)
        if sep in key:
          raise ValueError(
            f"Key {key!r} under {prefix or '<root>'!r} contains the "
            f"separator {sep!r}; choose another sep."
          )
        visit(child, f"{prefix}{sep}{key}" if prefix else key)
    else:
      flat[prefix] = node

  visit(tree, "")
  return flat


def unflatten(flat: Mapping[str, Any], sep: str = "/") -> Dict[str, Any]:
  """Inverse of `flatten`: {"a/b/c": leaf} -> {"a": {"b": {"c": leaf}}}."""
  tree: Dict[str, Any] = {}
  for name, leaf in flat.items():
    keys = name.split(sep)
    node = tree
    for i, key in enumerate(keys[:-1]):
      child = node.setdefault(key, {})
      if not isinstance(child, dict):
        raise ValueError(
          f"Name {name!r} needs {sep.join(keys[: i + 1])!r} to be a subtree, but it is also a leaf."
        )
      node = child
    if keys[-1] in node:
      raise ValueError(f"Name {name!r} is both a leaf and a subtree (or repeated).")
    node[keys[-1]] = leaf
  return tree


def _shape(leaf) -> Tuple[int, ...]:
  """Shape of an array, jax.ShapeDtypeStruct or Python scalar."""
  return tuple(leaf.shape) if hasattr(leaf, "shape") else np.shape(leaf)


def _dtype(leaf) -> np.dtype:
  return np.dtype(leaf.dtype) if hasattr(leaf, "dtype") else np.asarray(leaf).dtype


def compile_patterns(
  patterns: Union[str, Iterable[str], None], what: str = "pattern"
) -> List["re.Pattern[str]"]:
  """Compiles regexes (a string or a sequence of strings) naming the bad one on error."""
  if patterns is None:
    return []
  if isinstance(patterns, str):
    patterns = (patterns,)
  compiled = []
  for p in patterns:
    if not isinstance(p, str):
      raise TypeError(f"{what} must be regex strings; got {p!r} ({type(p).__name__}).")
    try:
      compiled.append(re.compile(p))
    except re.error as e:
      raise ValueError(f"Invalid {what} regex {p!r}: {e}.") from None
  return compiled


def matches(name: str, patterns: Sequence["re.Pattern[str]"]) -> bool:
  """True if `name` matches one pattern completely (re.fullmatch, as big_vision)."""
  return any(p.fullmatch(name) for p in patterns)


class ParamMismatchError(ValueError):
  """A loaded tree does not fit the target; the message lists every offending name."""

  def __init__(self, missing, unexpected, mismatched, context: str = ""):
    self.missing, self.unexpected, self.mismatched = missing, unexpected, mismatched
    lines = [f"Parameters do not match{f' ({context})' if context else ''}:"]
    if missing:
      lines.append(
        f"  missing (in the model, not in the loaded tree), {len(missing)}: " + ", ".join(missing)
      )
    if unexpected:
      lines.append(
        f"  unexpected (loaded, not in the model), {len(unexpected)}: " + ", ".join(unexpected)
      )
    if mismatched:
      lines.append(
        f"  mis-shaped, {len(mismatched)}: "
        + ", ".join(f"{n} (loaded {lo}, model {mo})" for n, lo, mo in mismatched)
      )
    lines.append(
      "  Exclude names with dont_load regexes (re.fullmatch, e.g. 'heads/.*') "
      "to keep their initial values, or rename with prefix_map."
    )
    super().__init__("\n".join(lines))


@dataclasses.dataclass
class MergeReport:
  """What `merge_params` did, name by name (flat "/" names of the target)."""

  loaded: List[str]  # target names whose value came from the loaded tree
  kept_init: List[str]  # target names that kept their initial value (dont_load / not mapped)
  dropped: List[str]  # loaded names (before prefix_map) that were not used

  def summary(self, max_names: int = 8) -> str:
    """A few lines for logs: counts, and names grouped by their two first parts."""

    def grouped(names):
      groups = sorted({"/".join(n.split("/")[:2]) for n in names})
      shown = ", ".join(groups[:max_names])
      return shown + (f", ... ({len(groups) - max_names} more)" if len(groups) > max_names else "")

    return (
      f"loaded {len(self.loaded)} arrays; kept initial values of {len(self.kept_init)}"
      f" [{grouped(self.kept_init)}]; dropped {len(self.dropped)} loaded arrays"
      f" [{grouped(self.dropped)}]"
    )


def _apply_prefix_map(flat_loaded: Dict[str, Any], prefix_map) -> Tuple[Dict[str, Any], List[str]]:
  """Keeps only loaded names under a mapped prefix, renamed; returns (kept, dropped)."""
  pairs = (
    list(prefix_map.items()) if isinstance(prefix_map, Mapping) else [tuple(p) for p in prefix_map]
  )
  for p in pairs:
    if len(p) != 2 or not all(isinstance(s, str) for s in p):
      raise ValueError(f"prefix_map entries must be (from_prefix, to_prefix) strings; got {p!r}.")
  kept, dropped = {}, []
  for name, leaf in flat_loaded.items():
    for src, dst in pairs:
      if name.startswith(src):
        kept[dst + name[len(src) :]] = leaf
        break
    else:
      dropped.append(name)
  return kept, dropped


def merge_params(
  loaded: Mapping[str, Any],
  inited: Mapping[str, Any],
  dont_load: Union[str, Sequence[str]] = (),
  *,
  prefix_map: Union[Mapping[str, str], Sequence[Tuple[str, str]]] = (),
  return_report: bool = False,
  context: str = "",
):
  """Fills the tree `inited` with the values of `loaded`, loudly.

  Every name of `inited` takes the loaded value, cast to the initialised dtype,
  except names matching a `dont_load` regex (re.fullmatch on the "/"-joined
  name), which keep their initial value; loaded names matching `dont_load` are
  ignored. With `prefix_map` (e.g. {"backbone/": "backbone/"}), only loaded
  names under a source prefix are used, renamed to the target prefix, and only
  target names under a target prefix are expected (the rest keep their initial
  values): a classifier's backbone transplants into HyperFace this way.

  Args:
    loaded: nested dict of arrays (e.g. a converted backbone's params).
    inited: nested dict of arrays (or ShapeDtypeStructs) of the target model.
    dont_load: regex or regexes of names not to load.
    prefix_map: mapping or (from, to) pairs of name prefixes.
    return_report: also return a `MergeReport`.
    context: words added to the error message (e.g. the file loaded).

  Returns:
    The merged nested dict (loaded leaves as numpy arrays), and the report if asked.

  Raises:
    ParamMismatchError: listing every missing, unexpected and mis-shaped name.
  """
  skip = compile_patterns(dont_load, "dont_load")
  flat_loaded = flatten(loaded)
  dropped: List[str] = []
  if prefix_map:
    flat_loaded, dropped = _apply_prefix_map(flat_loaded, prefix_map)
    targets = tuple(
      dst for _, dst in (prefix_map.items() if isinstance(prefix_map, Mapping) else prefix_map)
    )
  flat_init = flatten(inited)
  merged, loaded_names, kept = {}, [], []
  missing, mismatched = [], []
  for name, init_leaf in flat_init.items():
    in_scope = not prefix_map or name.startswith(targets)
    if not in_scope or matches(name, skip):
      merged[name] = init_leaf
      kept.append(name)
    elif name not in flat_loaded:
      missing.append(name)
    elif _shape(flat_loaded[name]) != _shape(init_leaf):
      mismatched.append((name, _shape(flat_loaded[name]), _shape(init_leaf)))
    else:
      merged[name] = np.asarray(flat_loaded[name]).astype(_dtype(init_leaf))
      loaded_names.append(name)
  used, kept_set, unexpected = set(loaded_names), set(kept), []
  for name in flat_loaded:
    if name in used or (name in flat_init and name not in kept_set):
      continue  # loaded, or already reported as mis-shaped
    if name in kept_set or matches(name, skip):
      dropped.append(name)
    else:
      unexpected.append(name)
  if missing or unexpected or mismatched:
    raise ParamMismatchError(missing, unexpected, mismatched, context)
  tree = unflatten(merged)
  if return_report:
    return tree, MergeReport(loaded_names, kept, dropped)
  return tree


def replace_head(
  tree: Mapping[str, Any], fresh: Mapping[str, Any], heads: Union[str, Sequence[str]]
) -> Dict[str, Any]:
  """Takes the subtrees `heads` (e.g. "heads/fc_landmarks2") from `fresh`, the rest from `tree`.

  For a new head shape (21 -> 68 landmarks), `fresh` is a fresh init of the new
  model; every other name must exist in both trees with the same shape.

  Args:
    tree: the trained params.
    fresh: params of the new model (freshly initialised).
    heads: subtree path(s), "/"-joined; each must exist in `fresh`.

  Returns:
    The new params (nested dict).
  """
  heads = (heads,) if isinstance(heads, str) else tuple(heads)
  names = flatten(fresh)
  for h in heads:
    if not any(n == h or n.startswith(h.rstrip("/") + "/") for n in names):
      raise KeyError(
        f"replace_head: {h!r} is not a subtree of the new model's params; "
        f"its subtrees: {sorted({'/'.join(n.split('/')[:2]) for n in names})}."
      )
  patterns = [re.escape(h.rstrip("/")) + "(/.*)?" for h in heads]
  return merge_params(tree, fresh, dont_load=patterns, context="replace_head")


def set_linear_head(tree: Mapping[str, Any], head: str, bias, kernel=0.0) -> Dict[str, Any]:
  """Sets a linear head's `<head>/kernel` to the constant `kernel` (0 by default) and its
  `<head>/bias` to `bias` (any shape with the bias's size, e.g. a [68, 2] mean shape).

  With a zero kernel the head predicts `bias` for every input at first, and its gradient
  w.r.t. the kernel is still non-zero (it is the feature times the error), so it trains.
  Used by `model_load.head_init` (model_init.py) to start a new 68-point head at the
  training mean shape (docs/surgery.md).

  Args:
    tree: nested dict of params (not modified).
    head: "/"-joined path of a Dense layer holding `kernel` and `bias`.
    bias: values of the bias (reshaped to its shape; cast to its dtype).
    kernel: the constant the kernel is filled with.

  Returns:
    A new nested dict.
  """
  flat = flatten(tree)
  k_name, b_name = f"{head.rstrip('/')}/kernel", f"{head.rstrip('/')}/bias"
  if k_name not in flat or b_name not in flat:
    raise KeyError(
      f"set_linear_head: {head!r} is not a Dense layer with kernel and bias; layers: "
      f"{sorted({n.rsplit('/', 1)[0] for n in flat})}."
    )
  b = np.asarray(bias)
  b_shape = _shape(flat[b_name])
  if b.size != int(np.prod(b_shape)):
    raise ValueError(
      f"set_linear_head: {b_name} has shape {b_shape}; the given bias has {b.size} values "
      f"(shape {b.shape})."
    )
  flat[b_name] = b.reshape(b_shape).astype(_dtype(flat[b_name]))
  flat[k_name] = np.full(_shape(flat[k_name]), kernel, _dtype(flat[k_name]))
  return unflatten(flat)


def reinit(
  tree: Mapping[str, Any], fresh: Mapping[str, Any], regexes: Union[str, Sequence[str]]
) -> Dict[str, Any]:
  """Re-initialises the names matching `regexes` (re.fullmatch) with `fresh`'s values.

  `tree` and `fresh` must have the same names and shapes (e.g. `fresh` is
  another `model.init` of the same model); a regex that matches nothing is an
  error (a typo would otherwise silently re-initialise nothing).
  """
  patterns = compile_patterns(regexes, "reinit")
  flat, flat_fresh = flatten(tree), flatten(fresh)
  merge_params(fresh, tree, context="reinit: `fresh` must have the names and shapes of `tree`")
  unused = [p.pattern for p in patterns if not any(p.fullmatch(n) for n in flat)]
  if unused:
    raise ValueError(
      f"reinit: regex(es) {unused} match no parameter name; names look like {list(flat)[:3]}."
    )
  return unflatten({n: flat_fresh[n] if matches(n, patterns) else leaf for n, leaf in flat.items()})


def label_tree(tree: Mapping[str, Any], groups, default: str = "default") -> Dict[str, Any]:
  """Names parameter groups by regex: a tree of labels for `optax.multi_transform`.

  Args:
    tree: nested dict of params.
    groups: {label: regex or regexes} (a ConfigDict works) or ((label, regex), ...);
      the first group whose regex fully matches a name labels it.
    default: label of names that no group matches.

  Returns:
    A nested dict of the same structure with a string label per leaf.

  Raises:
    ValueError: a group's regexes match no name (a typo would silently do nothing).
  """
  items = list(groups.items()) if hasattr(groups, "items") else [tuple(g) for g in groups]
  compiled = [(label, compile_patterns(regs, f"group {label!r}")) for label, regs in items]
  flat = flatten(tree)
  labels = {}
  for name in flat:
    labels[name] = next((label for label, pats in compiled if matches(name, pats)), default)
  unused = [label for label, pats in compiled if pats and label not in labels.values()]
  if unused:
    regexes = {label: [p.pattern for p in pats] for label, pats in compiled if label in unused}
    raise ValueError(
      f"Parameter group(s) {unused} match no parameter (regexes {regexes}); "
      f"names look like {list(flat)[:4]} (re.fullmatch, e.g. 'backbone/.*')."
    )
  return unflatten(labels)


def freeze_mask(tree: Mapping[str, Any], regexes: Union[str, Sequence[str]]) -> Dict[str, Any]:
  """A tree of bools: True where the "/" name fully matches one of `regexes` (frozen)."""
  labels = label_tree(tree, {"frozen": regexes}, default="trained")
  return unflatten({n: v == "frozen" for n, v in flatten(labels).items()})


def count_params(tree: Mapping[str, Any]) -> int:
  """Total number of scalars in the tree."""
  return int(sum(int(np.prod(_shape(x))) for x in flatten(tree).values()))


def param_overview(tree: Mapping[str, Any], max_rows: Optional[int] = None) -> str:
  """A text table of every array: name, shape, dtype, count, with totals.

  Written here rather than taken from clu.parameter_overview to avoid a
  dependency (clu pulls TensorFlow-only extras) for a 20-line table.

  Args:
    tree: nested dict of arrays or ShapeDtypeStructs.
    max_rows: show at most this many rows (totals always count everything).

  Returns:
    The table, one line per array, then a totals line with the count and bytes.
  """
  flat = flatten(tree)
  rows = [(n, str(_shape(x)), str(_dtype(x)), int(np.prod(_shape(x)))) for n, x in flat.items()]
  total = sum(r[3] for r in rows)
  nbytes = sum(int(np.prod(_shape(x))) * _dtype(x).itemsize for x in flat.values())
  shown = rows if max_rows is None else rows[:max_rows]
  header = ("name", "shape", "dtype", "count")
  widths = [max([len(header[i])] + [len(str(r[i])) for r in shown]) for i in range(3)]
  widths.append(max([len(header[3])] + [len(f"{r[3]:,}") for r in shown] + [len(f"{total:,}")]))

  def line(cells):
    return " | ".join(
      str(c).ljust(w) if i < 3 else str(c).rjust(w)
      for i, (c, w) in enumerate(zip(cells, widths, strict=True))
    )

  out = [line(header), "-+-".join("-" * w for w in widths)]
  out += [line((n, s, d, f"{c:,}")) for n, s, d, c in shown]
  if len(shown) < len(rows):
    out.append(f"... {len(rows) - len(shown)} more arrays")
  out.append("-+-".join("-" * w for w in widths))
  out.append(f"Total: {len(rows)} arrays, {total:,} parameters, {nbytes / 2**20:.2f} MiB")
  return "\n".join(out)
