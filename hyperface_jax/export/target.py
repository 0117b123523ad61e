"""The function that gets exported: a trained run's model as `images -> {name: array}`.

`build_target` restores the variables of a run (inference/batched.py `load_variables`, the
one restore path) and closes the model over them as constants, so every format holds one
self-contained function of the normalized images. Two models:

  network    the per-crop network of any registered model, `model.apply(variables,
             images, train=False)` on [B, S, S, 3] crops, S = config.input_size: HyperFace
             (AlexNet / ResNet), R-CNN_Face, Fast-HyperFace's proposal net on 24 px crops
             ("detection" [B, 2]), and the TCDCN / social networks that register in
             registry.MODELS with the same signature.
  proposals  Fast-HyperFace's proposal net run fully convolutionally over whole image
             levels [B, H, W, 3] -> "detection_map" [B, h, w, 2] (models/fast_proposal_net.py,
             inference/fast_proposals.py), H and W symbolic (>= 24) unless fixed.

The batch dimension is fixed (`batch=N`) or symbolic (`batch="dynamic"`, one exported
function for every batch size); symbolic dimensions are jax.export shape polymorphism.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Dict, Optional, Sequence, Tuple, Union

import jax
import jax.numpy as jnp
import numpy as np

from hyperface_jax.export import spec as spec_lib

MODELS = ("network", "proposals")
PROPOSAL_MODEL = "fast_proposal_net"


class ExportError(Exception):
  """A usage or input problem, reported as one line (exit status 2)."""


@dataclasses.dataclass(frozen=True)
class ExportTarget:
  """A restored model as one function of the normalized images.

  Attributes:
    fn: float32 images -> {output name: float32 array}, pure, variables closed over.
    dims: the input shape; a str entry is a symbolic dimension ("b", "h", "w").
    constraints: jax.export constraints on the symbolic dimensions ("h >= 24").
    kind: "network" or "proposals".
    config: the run's training config.
    step: the checkpoint step restored.
    workdir: the run.
  """

  fn: Callable[[Any], Dict[str, Any]]
  dims: Tuple[Union[int, str], ...]
  constraints: Tuple[str, ...]
  kind: str
  config: Any
  step: int
  workdir: str

  @property
  def dynamic(self) -> bool:
    return any(isinstance(d, str) for d in self.dims)

  @property
  def normalize(self) -> str:
    return self.config.data.get("normalize", "minus_half")

  def input_struct(self) -> jax.ShapeDtypeStruct:
    """The input as a jax.ShapeDtypeStruct, symbolic dimensions in one scope."""
    if not self.dynamic:
      return jax.ShapeDtypeStruct(tuple(self.dims), jnp.float32)
    shape = jax.export.symbolic_shape(
      ", ".join(str(d) for d in self.dims), constraints=self.constraints
    )
    return jax.ShapeDtypeStruct(shape, jnp.float32)

  def output_structs(self) -> Dict[str, jax.ShapeDtypeStruct]:
    """{name: ShapeDtypeStruct} of the outputs, sorted by name (symbolic where the input is)."""
    out = jax.eval_shape(self.fn, self.input_struct())
    return {k: out[k] for k in sorted(out)}

  def output_names(self) -> Tuple[str, ...]:
    return tuple(self.output_structs())

  def example_shape(self, batch: int = 3, height: int = 56, width: int = 72) -> Tuple[int, ...]:
    """A concrete input shape: symbolic b/h/w replaced by `batch`/`height`/`width`."""
    subst = {"b": batch, "h": height, "w": width}
    return tuple(subst[d] if isinstance(d, str) else int(d) for d in self.dims)

  def run(self, images: np.ndarray) -> Dict[str, np.ndarray]:
    """The JAX reference outputs of normalized images (numpy)."""
    return jax.device_get(jax.jit(self.fn)(jnp.asarray(images, jnp.float32)))

  def preprocessing(self) -> Dict[str, Any]:
    """The preprocessing.json payload (less the format-specific `format` / `files`)."""
    outputs = [spec_lib.output_spec(k, v.shape, v.dtype) for k, v in self.output_structs().items()]
    return {
      "version": spec_lib.SPEC_VERSION,
      "model": self.kind,
      "source": {
        "workdir": self.workdir,
        "step": int(self.step),
        "model_name": self.config.model_name,
        "model": dict(self.config.model),
        "tasks": list(self.config.get("tasks", ())),
      },
      "input": spec_lib.input_spec(list(self.dims), self.normalize),
      "crop": spec_lib.crop_spec(self.kind, self.config.input_size),
      "normalize": spec_lib.normalize_spec(self.normalize),
      "outputs": outputs,
    }


def parse_batch(batch: Union[int, str, None]) -> Union[int, str]:
  """`batch` as an int >= 1 or "dynamic" (None)."""
  if batch is None or (isinstance(batch, str) and batch.strip().lower() == "dynamic"):
    return "dynamic"
  try:
    value = int(batch)
  except (TypeError, ValueError):
    raise ExportError(f"--batch must be a positive integer or 'dynamic'; got {batch!r}.") from None
  if value < 1:
    raise ExportError(f"--batch must be a positive integer or 'dynamic'; got {batch!r}.")
  return value


def build_target(
  workdir: str,
  *,
  model: str = "network",
  batch: Union[int, str, None] = "dynamic",
  step: Optional[int] = None,
  image_size: Optional[Sequence[int]] = None,
) -> ExportTarget:
  """Restores a run and wraps its model for export (module docstring).

  Args:
    workdir: a training workdir (config.json + checkpoints/).
    model: "network" (per-crop) or "proposals" (a fast_proposal_net run's dense map).
    batch: a fixed batch size or "dynamic".
    step: checkpoint step (None: the latest).
    image_size: (H, W) of the proposals model's input; None = symbolic H, W.

  Raises:
    ExportError: not a trained run, an unknown model, proposals of another model.
  """
  from hyperface_jax.inference import batched

  if model not in MODELS:
    raise ExportError(f"--model must be one of {MODELS}; got {model!r}.")
  b = parse_batch(batch)
  try:
    config = batched.load_workdir_config(workdir)
    net, variables, restored_step = batched.load_variables(config, workdir, step)
  except (FileNotFoundError, ValueError, KeyError) as e:
    raise ExportError(f"--workdir {workdir} is not a trained run: {e}") from None
  # Constants of the exported function: numpy arrays, not device buffers.
  variables = jax.device_get(variables)
  bdim = "b" if b == "dynamic" else b
  constraints: Tuple[str, ...] = ()
  if model == "network":
    if image_size is not None:
      raise ExportError("--image_size applies to --model=proposals only.")
    s = int(config.input_size)
    dims = (bdim, s, s, 3)
  else:
    if config.model_name != PROPOSAL_MODEL:
      raise ExportError(
        f"--model=proposals needs a Fast-HyperFace proposal run (model_name "
        f"{PROPOSAL_MODEL!r}, configs/fast_hyperface.py); {workdir} holds {config.model_name!r}."
      )
    if image_size is None:
      dims = (bdim, "h", "w", 3)
      constraints = ("h >= 24", "w >= 24")
    else:
      h, w = (int(v) for v in image_size)
      if min(h, w) < 24:
        raise ExportError(f"--image_size must be at least 24 x 24; got {h} x {w}.")
      dims = (bdim, h, w, 3)

  def fn(images):
    return dict(net.apply(variables, images, train=False))

  return ExportTarget(
    fn=fn,
    dims=dims,
    constraints=constraints,
    kind=model,
    config=config,
    step=int(restored_step),
    workdir=workdir,
  )
