"""TCDCN (docs/papers.md section 2): a small grey-input CNN, a shared feature, linear heads.

  model = registry.MODELS.get("tcdcn")()                 # ECCV'14, 40x40 grey input
  model = registry.MODELS.get("tcdcn_tpami16")()         # TPAMI'16: 5 points + 22 attributes
  outputs = model.apply(variables, images)               # {task: [B, *output_shape]}

ECCV'14 layer by layer (docs/papers.md section 2.1; channel counts are TFTC's and MXTC's
[R]; 40x40 input, abs(tanh) after every conv and after the fc layer [V: KRNOTE]):

  input 40x40x1 (grey) -> conv1 5x5x16 VALID -> 36x36x16 -> max 2x2/2 -> 18x18x16
  -> conv2 3x3x48 -> 16x16x48 -> pool -> 8x8x48 -> conv3 3x3x64 -> 6x6x64 -> pool -> 3x3x64
  -> conv4 2x2x64 -> 2x2x64 (no pool) -> flatten 256 -> fc 100 (the shared feature)
  -> one linear layer per task: landmarks5 10, pose_class 5, gender 2, eyeglasses 2, smiling 2.

Param tree: {"backbone": {"conv1".."conv4", "fc"}, "heads": {<task>: Dense}}. The heads
are config-driven: one `nn.Dense` per name in `tasks`, named after the task, its width the
product of the task's declared `output_shape` (hyperface_jax/tasks.py). Swapping the
5-point head for a 68-point one is therefore a change of `tasks` plus head surgery
(`model_load.head_init`, docs/surgery.md): every backbone name stays the same.

Grey input: a 3-channel input is reduced to one luma channel by the fixed BT.601 weights
(hyperface_jax/colour.py BT601_LUMA) before conv1, so conv1 has the paper's single input channel.
With `data.normalize="grey"` (3 identical channels Y/255 - 0.5) the reduction returns that
channel (the weights sum to 1; equal up to float32 rounding); with "minus_half" RGB it
computes the same luma.
A 1-channel input is used as it is.

Documented defaults where the papers are silent (each a field): max pooling 2x2 stride 2,
floor ("VALID"; MXTC's pool3 is 3x3/2 ceil, which gives the same 3x3 at 40 px); no pooling
after conv4; Flax's default initialisers (LeCun normal kernels, zero biases: suited to tanh);
no dropout. TPAMI'16 (section 2.2): input size and widths are [?] (section 7 item 7): the
`tcdcn_tpami16` defaults keep the ECCV network (40 px, 16/48/64/64, 100-d) so that the
5-point pre-training and the ECCV model differ only by their auxiliary tasks; every size is
a field (`conv_features`, `feature_dim`; the input size is `config.input_size`). The task
covariance of TPAMI'16 (unknown formula) is not modelled; its dynamic task coefficients are
a task weighting (config.weighting, hyperface_jax/weighting.py).
"""

from __future__ import annotations

from typing import Any, Dict, Sequence, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from hyperface_jax import registry
from hyperface_jax import tasks as _tasks
from hyperface_jax.colour import BT601_LUMA

ECCV14_TASKS = ("landmarks5", "pose_class", "gender", "eyeglasses", "smiling")
TPAMI16_TASKS = ("landmarks5", "attributes22")


def abs_tanh(x: jax.Array) -> jax.Array:
  """|tanh(x)|, TCDCN's activation after every conv and fc layer (docs/papers.md 2.1)."""
  return jnp.abs(jnp.tanh(x))


def to_grey(images: jax.Array) -> jax.Array:
  """[B, H, W, 3] -> [B, H, W, 1] BT.601 luma; a 1-channel input is returned unchanged."""
  if images.shape[-1] == 1:
    return images
  if images.shape[-1] != 3:
    raise ValueError(f"TCDCN expects 1 or 3 input channels, got shape {images.shape}.")
  return jnp.tensordot(images, jnp.asarray(BT601_LUMA, images.dtype), axes=[[-1], [0]])[..., None]


def max_pool(x: jax.Array, size: int) -> jax.Array:
  """Max pooling, window = stride = `size`, VALID (floor): the same values as
  `nn.max_pool(x, (size, size), strides=(size, size))`, written as a reshape and a max
  because XLA's CPU gradient of reduce_window (select_and_scatter) made the whole train
  step about 2x slower (bench on 2 cores: 0.13 s vs 0.06 s for a batch of 64)."""
  b, h, w, c = x.shape
  h, w = h // size, w // size
  x = x[:, : h * size, : w * size]
  return x.reshape(b, h, size, w, size, c).max(axis=(2, 4))


class TCDCNBackbone(nn.Module):
  """conv1..conv4 (abs tanh, max pooling) -> fc (abs tanh): the shared feature.

  Attributes:
    conv_features: output channels of conv1..conv4 (16, 48, 64, 64).
    conv_kernels: square kernel sides of conv1..conv4 (5, 3, 3, 2).
    pool_after: whether a max pool follows each conv (True, True, True, False).
    pool_size: pooling window and stride (2; documented default, VALID/floor).
    feature_dim: width of the shared fc feature (100).
    grey: reduce a 3-channel input to luma first (module docstring).
    dtype: computation dtype.
  """

  conv_features: Sequence[int] = (16, 48, 64, 64)
  conv_kernels: Sequence[int] = (5, 3, 3, 2)
  pool_after: Sequence[bool] = (True, True, True, False)
  pool_size: int = 2
  feature_dim: int = 100
  grey: bool = True
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, images: jax.Array) -> jax.Array:
    if not len(self.conv_features) == len(self.conv_kernels) == len(self.pool_after):
      raise ValueError(
        "conv_features, conv_kernels and pool_after need one entry per conv layer; got "
        f"{self.conv_features}, {self.conv_kernels}, {self.pool_after}."
      )
    x = to_grey(images) if self.grey else images
    x = x.astype(self.dtype)
    for i, (feat, k, pool) in enumerate(
      zip(self.conv_features, self.conv_kernels, self.pool_after, strict=True)
    ):
      x = nn.Conv(feat, (k, k), padding="VALID", dtype=self.dtype, name=f"conv{i + 1}")(x)
      x = abs_tanh(x)
      if pool:
        x = max_pool(x, self.pool_size)
      if min(x.shape[1:3]) < 1:
        raise ValueError(f"TCDCN: input {images.shape[1:3]} is too small for conv{i + 1}.")
    x = x.reshape((x.shape[0], -1))
    return abs_tanh(nn.Dense(self.feature_dim, dtype=self.dtype, name="fc")(x))


class LinearTaskHeads(nn.Module):
  """One linear layer per task on the shared feature, named after the task.

  Attributes:
    tasks: registered task names (hyperface_jax/tasks.py); each head's width is the
      product of the task's `output_shape` and its output is reshaped to it.
    extra_tasks: more heads as ((name, output_shape), ...), e.g. a head no task declares.
    dtype: computation dtype; outputs are float32.
  """

  tasks: Sequence[str] = ECCV14_TASKS
  extra_tasks: Tuple[Tuple[str, Tuple[int, ...]], ...] = ()
  dtype: Any = jnp.float32

  def output_shapes(self) -> Dict[str, Tuple[int, ...]]:
    shapes = {t: tuple(_tasks.get(t).output_shape) for t in self.tasks}
    for name, shape in self.extra_tasks:
      if name in shapes:
        raise ValueError(f"LinearTaskHeads: {name!r} is both in tasks and extra_tasks.")
      shapes[name] = tuple(shape)
    return shapes

  @nn.compact
  def __call__(self, x: jax.Array) -> Dict[str, jax.Array]:
    out = {}
    for name, shape in self.output_shapes().items():
      size = 1
      for s in shape:
        size *= s
      y = nn.Dense(size, dtype=self.dtype, name=name)(x)
      out[name] = y.reshape((x.shape[0],) + shape).astype(jnp.float32)
    return out


@registry.MODELS.register("tcdcn")
class TCDCN(nn.Module):
  """TCDCN, ECCV'14 (module docstring): backbone -> shared feature -> linear task heads.

  Attributes:
    tasks: the heads, one per registered task (default: the ECCV'14 five).
    extra_tasks: more heads as ((name, output_shape), ...).
    conv_features, conv_kernels, pool_after, pool_size, feature_dim, grey: see
      `TCDCNBackbone`.
    dropout: rate on the shared feature in training (documented default 0: the papers
      mention none).
    dtype: computation dtype; params and outputs are float32.
  """

  tasks: Sequence[str] = ECCV14_TASKS
  extra_tasks: Tuple[Tuple[str, Tuple[int, ...]], ...] = ()
  conv_features: Sequence[int] = (16, 48, 64, 64)
  conv_kernels: Sequence[int] = (5, 3, 3, 2)
  pool_after: Sequence[bool] = (True, True, True, False)
  pool_size: int = 2
  feature_dim: int = 100
  grey: bool = True
  dropout: float = 0.0
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, images: jax.Array, train: bool = False) -> Dict[str, jax.Array]:
    """Predicts every task.

    Args:
      images: float32 [B, S, S, 3] (or [B, S, S, 1]) normalized crops; S = 40 in the paper.
      train: enables dropout (rng stream "dropout") when `dropout` > 0.

    Returns:
      {task: float32 [B, *output_shape]}: region-normalized points for landmark tasks,
      logits for classification tasks.
    """
    if images.ndim != 4:
      raise ValueError(f"TCDCN expects images [B, S, S, C] (NHWC), got shape {images.shape}.")
    feat = TCDCNBackbone(
      conv_features=tuple(self.conv_features),
      conv_kernels=tuple(self.conv_kernels),
      pool_after=tuple(self.pool_after),
      pool_size=self.pool_size,
      feature_dim=self.feature_dim,
      grey=self.grey,
      dtype=self.dtype,
      name="backbone",
    )(images)
    if self.dropout > 0:
      feat = nn.Dropout(self.dropout, deterministic=not train)(feat)
    return LinearTaskHeads(
      tasks=tuple(self.tasks),
      extra_tasks=tuple((n, tuple(s)) for n, s in self.extra_tasks),
      dtype=self.dtype,
      name="heads",
    )(feat)


@registry.MODELS.register("tcdcn_tpami16")
class TCDCNTPAMI16(TCDCN):
  """TCDCN, TPAMI'16 pre-training network: 5 points + the 22 attributes (module docstring).

  Same fields as `TCDCN`; only the default heads differ (`TPAMI16_TASKS`). The input size
  and widths of the TPAMI network are unknown (docs/papers.md 2.2 [?]) and are fields.
  """

  tasks: Sequence[str] = TPAMI16_TASKS
