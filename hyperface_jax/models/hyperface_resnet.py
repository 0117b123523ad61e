"""HyperFace-ResNet (docs/papers.md section 1.10): ResNet backbone, fused low-level features for
the local tasks, deep res5 features for the global tasks.

The paper states only that HF-ResNet builds on ResNet-101 and fuses geometrically rich
lower layers with semantically strong deep ones; which blocks, how they are resized and
which heads read what are open ([?] in docs/papers.md 1.10). Every such choice is a field here
with the documented default (the hypothesis written down in docs/papers.md 1.10):

  local branch   fuse_layers (res3a, res4a) -> adaptive max-pool to the res5 grid ->
                 1x1 conv to fuse_channels (+BN, ReLU) each; with fuse_deep the res5c map
                 1x1-reduced the same way joins them -> channel concat -> 1x1 conv_all
                 (fusion_channels) -> flatten -> fc_local -> heads of local_tasks
                 (landmarks, visibility)
  global branch  res5c -> global average pool -> fc_global -> heads of the other tasks
                 (detection, pose, gender)

Param tree: {"backbone": ResNet names (models/resnet.py), "fusion": {"reduce_res3a", ...,
"conv_all", "fc_local", "fc_global"}, "heads_local": {"fc_<task>1", "fc_<task>2"},
"heads_global": {...}}. The backbone tree is that of the "resnet101" classifier, so an
ImageNet ResNet converted by hyperface_jax.convert transplants by name.
Outputs: the dict of models/hyperface.py ("detection", "landmarks", "visibility", "pose",
"gender"), so the HyperFace losses, evaluators and train loop work unchanged.
"""

from __future__ import annotations

from typing import Any, Dict, Sequence, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from hyperface_jax.models.classifiers import adaptive_avg_pool
from hyperface_jax.models.heads import DEFAULT_TASKS, TaskHeads
from hyperface_jax.models.resnet import backbone_of, batch_norm, conv_init, log_norm_choice
from hyperface_jax.registry import MODELS

LOCAL_TASKS = ("landmarks", "visibility")  # docs/papers.md 1.10 [M]: read the fused features


def adaptive_max_pool(x: jax.Array, output_size: Tuple[int, int]) -> jax.Array:
  """Max over torch-style adaptive bins (bin i spans [floor(iH/n), ceil((i+1)H/n)))."""
  rows = []
  n_h, n_w = output_size
  h, w = x.shape[1:3]
  for i in range(n_h):
    r = x[:, (i * h) // n_h : -((-(i + 1) * h) // n_h)]
    rows.append(
      jnp.stack(
        [
          jnp.max(r[:, :, (j * w) // n_w : -((-(j + 1) * w) // n_w)], axis=(1, 2))
          for j in range(n_w)
        ],
        axis=1,
      )
    )
  return jnp.stack(rows, axis=1)


@MODELS.register("hyperface_resnet")
class HyperFaceResNet(nn.Module):
  """The HyperFace-ResNet multi-task network.

  Attributes:
    depth: ResNet depth (101 in the paper, docs/papers.md 1.10; 50 for the CPU variant).
    base_width: ResNet base width (64 as ImageNet ResNets; smaller in the CPU variant).
    stride_in_1x1: original Caffe ResNet stride placement (True when transplanting the
      Caffe ResNet-101 release; the default matches torchvision weights).
    caffe_pool: Caffe ceil-mode pool1 (with Caffe weights).
    fuse_layers: lower-level block outputs fused for the local tasks (documented default
      res3a, res4a; any name of models/resnet.py, e.g. "res2", "res3b3").
    fuse_pool: "max" (documented default) or "avg" adaptive pooling to the res5 grid.
    fuse_channels: 1x1-reduced channels of each fused map (documented default 256).
    fuse_deep: concat the reduced res5c map with the lower ones (documented default True,
      as HyperFace-AlexNet fuses pool5, docs/papers.md 1.2).
    fusion_channels: 1x1 conv_all channels after the concat (documented default 192,
      as conv_all in HyperFace-AlexNet).
    fc_local: width of the fused local feature (documented default 1024).
    fc_global: width of the global feature on pooled res5c (1024; 0 = heads read the
      2048-d pooled res5c directly).
    head_width: width of each fc_<task>1 (512, docs/papers.md 1.2).
    dropout: rate after fc_local / fc_global and each 512 head layer (0.5, docs/papers.md 1.2).
    num_landmarks: landmarks predicted (21, AFLW).
    tasks: heads to build (default all five).
    local_tasks: which of them read the fused features (landmarks, visibility [M]); the
      others read res5c.
    extra_tasks: more heads as ((name, output_shape), ...), on the local branch.
    norm_axis_name: mesh axis of synchronised BatchNorm statistics ("data" in the
      data-parallel step by config default; None = per-device statistics).
    dtype: computation dtype; params and outputs float32.
  """

  depth: int = 101
  base_width: int = 64
  stride_in_1x1: bool = False
  caffe_pool: bool = False
  fuse_layers: Sequence[str] = ("res3a", "res4a")
  fuse_pool: str = "max"
  fuse_channels: int = 256
  fuse_deep: bool = True
  fusion_channels: int = 192
  fc_local: int = 1024
  fc_global: int = 1024
  head_width: int = 512
  dropout: float = 0.5
  num_landmarks: int = 21
  tasks: Sequence[str] = DEFAULT_TASKS
  local_tasks: Sequence[str] = LOCAL_TASKS
  extra_tasks: Tuple[Tuple[str, Tuple[int, ...]], ...] = ()
  norm_axis_name: Any = None
  dtype: Any = jnp.float32

  def __post_init__(self):
    super().__post_init__()
    log_norm_choice(f"hyperface_resnet (ResNet-{self.depth})", self.norm_axis_name)

  @nn.compact
  def __call__(self, images: jax.Array, train: bool = False) -> Dict[str, jax.Array]:
    """Predicts every task for a batch of region crops.

    Args:
      images: float32 [B, S, S, 3] normalized crops (224 by default; any S >= 32).
      train: BatchNorm batch statistics and dropout (rng stream "dropout").

    Returns:
      Dict with "detection" [B, 2] logits, "landmarks" [B, L, 2], "visibility" [B, L],
      "pose" [B, 3] radians, "gender" [B, 2] logits (those in `tasks`), float32.
    """
    if self.fuse_pool not in ("max", "avg"):
      raise ValueError(f"HyperFaceResNet.fuse_pool must be 'max' or 'avg', got {self.fuse_pool!r}.")
    feats = backbone_of(self)(images, train)
    missing = [n for n in self.fuse_layers if n not in feats]
    if missing:
      raise ValueError(
        f"HyperFaceResNet.fuse_layers {missing} are not ResNet-{self.depth} "
        f"outputs; known: conv1, pool1, res2..res5 and the block names "
        f"res2a ... res5c (models/resnet.py)."
      )
    local, global_ = ResNetFusion(
      fuse_layers=tuple(self.fuse_layers),
      fuse_pool=self.fuse_pool,
      fuse_channels=self.fuse_channels,
      fuse_deep=self.fuse_deep,
      fusion_channels=self.fusion_channels,
      fc_local=self.fc_local,
      fc_global=self.fc_global,
      dropout=self.dropout,
      norm_axis_name=self.norm_axis_name,
      dtype=self.dtype,
      name="fusion",
    )(feats, train)
    local_tasks = tuple(t for t in self.tasks if t in self.local_tasks)
    global_tasks = tuple(t for t in self.tasks if t not in self.local_tasks)
    out = {}
    heads = dict(
      head_width=self.head_width,
      dropout=self.dropout,
      num_landmarks=self.num_landmarks,
      dtype=self.dtype,
    )
    if local_tasks or self.extra_tasks:
      out.update(
        TaskHeads(tasks=local_tasks, extra_tasks=self.extra_tasks, name="heads_local", **heads)(
          local, train
        )
      )
    if global_tasks:
      out.update(TaskHeads(tasks=global_tasks, name="heads_global", **heads)(global_, train))
    return {t: out[t] for t in tuple(self.tasks) + tuple(n for n, _ in self.extra_tasks)}


def conv_bn_relu(
  name: str, x: jax.Array, features: int, train: bool, axis_name: Any, dtype: Any
) -> jax.Array:
  """1x1 conv (no bias) + BatchNorm "bn_<name>" + ReLU, in the calling module's scope."""
  x = nn.Conv(features, (1, 1), use_bias=False, kernel_init=conv_init, dtype=dtype, name=name)(x)
  return nn.relu(batch_norm(f"bn_{name}", train, axis_name, dtype)(x))


class ResNetFusion(nn.Module):
  """The local (fused) and global feature vectors of HyperFaceResNet (fields as there)."""

  fuse_layers: Tuple[str, ...] = ("res3a", "res4a")
  fuse_pool: str = "max"
  fuse_channels: int = 256
  fuse_deep: bool = True
  fusion_channels: int = 192
  fc_local: int = 1024
  fc_global: int = 1024
  dropout: float = 0.5
  norm_axis_name: Any = None
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, feats: Dict[str, jax.Array], train: bool = False):
    """Returns (local [B, fc_local], global [B, fc_global or 2048]) features."""
    deep = feats["res5"]
    grid = deep.shape[1:3]
    pool = adaptive_max_pool if self.fuse_pool == "max" else adaptive_avg_pool
    cbr = lambda n, x, c: conv_bn_relu(n, x, c, train, self.norm_axis_name, self.dtype)
    maps = [cbr(f"reduce_{n}", pool(feats[n], grid), self.fuse_channels) for n in self.fuse_layers]
    if self.fuse_deep:
      maps.append(cbr("reduce_res5", deep, self.fuse_channels))
    x = cbr("conv_all", jnp.concatenate(maps, axis=-1), self.fusion_channels)
    x = x.reshape((x.shape[0], -1))

    def dense(name, width, x):
      x = nn.relu(nn.Dense(width, dtype=self.dtype, name=name)(x))
      return nn.Dropout(self.dropout, deterministic=not train)(x)

    local = dense("fc_local", self.fc_local, x)
    global_ = jnp.mean(deep.astype(jnp.float32), axis=(1, 2)).astype(deep.dtype)
    if self.fc_global:
      global_ = dense("fc_global", self.fc_global, global_)
    return local, global_
