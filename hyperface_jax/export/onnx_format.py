"""ONNX export through jax2onnx, run by onnxruntime.

jax2onnx converts a traced JAX function. Two of its paths fail on these models, so the
function is first traced here to a jaxpr of plain `lax` primitives and that jaxpr, lightly
rewritten, is what jax2onnx converts:

  * its Flax Linen plugins replace `flax.linen.max_pool` with a function that takes the
    window only as a keyword, and the models call `nn.max_pool(x, (3, 3), ...)`
    (TypeError); tracing outside jax2onnx keeps its patches out of the model code;
  * it lowers `lax.reduce_window_max` to one ONNX MaxPool over ALL the operand's axes
    (a 4-D pooling for NHWC), which onnxruntime rejects ("Unsupported pooling size").
    `_inline` rewrites every max pool so that only the pooled axes are pooled: the other
    axes are moved in front and flattened into one, giving a 3-D MaxPool (1 x k x k).

Symbolic dimensions (the batch, the proposal net's H and W) come through as ONNX
`dim_param`s.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.extend import core as jex_core

from hyperface_jax.export import spec as spec_lib
from hyperface_jax.export.target import ExportError, ExportTarget

OPSET = 23  # jax2onnx's default; onnxruntime 1.31 runs it
_CALLS = ("pjit", "jit", "closed_call", "core_call")


def _max_pool(x, *, window_dimensions, window_strides, padding, base_dilation, window_dilation):
  """`reduce_window_max` with only its pooled axes pooled (module docstring)."""
  if any(d != 1 for d in base_dilation) or any(d != 1 for d in window_dilation):
    raise ExportError("ONNX export: dilated max pooling is not supported.")
  nd = x.ndim
  pooled = [
    i
    for i in range(nd)
    if window_dimensions[i] != 1 or window_strides[i] != 1 or tuple(padding[i]) != (0, 0)
  ]
  if len(pooled) > 2:  # + the flattened axis: onnxruntime pools at most 3-D
    raise ExportError(f"ONNX export: max pooling over {len(pooled)} axes (at most 2).")
  rest = [i for i in range(nd) if i not in pooled]
  perm = rest + pooled
  xt = jnp.transpose(x, perm)
  lead = xt.shape[: len(rest)]
  flat = 1
  for d in lead:
    flat = flat * d
  xt = xt.reshape((flat,) + xt.shape[len(rest) :])
  window = (1,) + tuple(window_dimensions[i] for i in pooled)
  y = lax.reduce_window_max_p.bind(
    xt,
    window_dimensions=window,
    window_strides=(1,) + tuple(window_strides[i] for i in pooled),
    padding=((0, 0),) + tuple(tuple(padding[i]) for i in pooled),
    base_dilation=(1,) * len(window),
    window_dilation=(1,) * len(window),
  )
  y = y.reshape(tuple(lead) + y.shape[1:])
  return jnp.transpose(y, tuple(int(i) for i in np.argsort(perm)))


def _inline(closed, *args):
  """Evaluates a closed jaxpr, inlining calls and rewriting max pools (module docstring)."""
  jaxpr, env = closed.jaxpr, {}

  def read(v):
    return v.val if isinstance(v, jex_core.Literal) else env[v]

  for v, c in zip(jaxpr.constvars, closed.consts, strict=True):
    env[v] = c
  for v, a in zip(jaxpr.invars, args, strict=True):
    env[v] = a
  for eqn in jaxpr.eqns:
    vals = [read(v) for v in eqn.invars]
    name = eqn.primitive.name
    if name == "reduce_window_max":
      outs = [_max_pool(vals[0], **eqn.params)]
    elif name in _CALLS and "jaxpr" in eqn.params:
      outs = _inline(eqn.params["jaxpr"], *vals)
    elif name == "custom_jvp_call":  # e.g. nn.relu: its primal computation only
      outs = _inline(eqn.params["call_jaxpr"], *vals)
    else:
      outs = eqn.primitive.bind(*vals, **eqn.params)
      outs = outs if eqn.primitive.multiple_results else [outs]
    for v, o in zip(eqn.outvars, outs, strict=True):
      env[v] = o
  return [read(v) for v in jaxpr.outvars]


@contextlib.contextmanager
def _quiet(names: Sequence[str] = ("jax2onnx", "onnx_ir")):
  """jax2onnx logs a warning with a traceback for each plugin of a library that is not
  installed (equinox, dm_pix), and onnx_ir one per untyped shape constant: noise here."""
  loggers = [logging.getLogger(n) for n in names]
  levels = [lg.level for lg in loggers]
  for lg in loggers:
    lg.setLevel(logging.ERROR)
  try:
    yield
  finally:
    for lg, level in zip(loggers, levels, strict=True):
      lg.setLevel(level)


def write(target: ExportTarget, path: str) -> None:
  """Writes `target` as an ONNX model (input "images", outputs named as the model's)."""
  try:
    with _quiet():
      import jax2onnx
      import onnx
  except ImportError as e:
    raise ExportError(
      f"--format=onnx needs jax2onnx and onnx ({e}): pip install --no-deps -r "
      "requirements-export.lock (or make test)."
    ) from None
  names = target.output_names()
  struct = target.input_struct()
  closed = jax.make_jaxpr(lambda x: [target.fn(x)[k] for k in names])(struct)
  with _quiet():
    proto = jax2onnx.to_onnx(
      lambda x: tuple(_inline(closed, x)),
      inputs=[struct],
      input_names=[spec_lib.INPUT_NAME],
      output_names=list(names),
      model_name=f"hyperface_jax_{target.kind}",
      opset=OPSET,
    )
  onnx.save_model(proto, path)


def load(path: str):
  """An onnxruntime session of `path` (CPU); raises ImportError naming the package."""
  import onnxruntime as ort

  options = ort.SessionOptions()
  options.log_severity_level = 3
  return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
