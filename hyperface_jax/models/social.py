"""Face branch, attribute network and Siamese relation network (docs/papers.md section 3).

  social_attributes   crops [B, S, S, 3] -> {task: logits or values} (expression, gender,
                      pose, age_group, smiling, ...): the face branch trained multi-task
                      on heterogeneous attribute data (section 3.1, 3.4).
  social_relation     {"faces": [B, 2, S, S, 3], "cues": [B, C]} -> {"relations": [B, 8]
                      logits, "faces/<task>": [B, 2, ...] attribute outputs of both faces}:
                      two weight-shared branches, the pair's spatial cues, fully
                      connected layers to the 8 traits (section 3.2).

Param tree of both: {"branch": {"backbone": ..., "fc_feature"}, "heads": {"<task>"}}, plus
"relation" in the Siamese net, so `config.model_init` loads an attribute run into a relation
run with `model_load.dont_load=("relation/.*",)`. The branch's feature is
x = relu(fc_feature(backbone(crop))); with the bridging layer (section 3.3) it is [x; h],
h being the crop's HOG distances to the 210 fitted templates (hyperface_jax/bridging.py),
standardised by their training mean and deviation; templates and statistics are the
non-trainable collection "bridging" (restored from the run's template file). The attribute
classifiers are linear maps of that feature, y = f(W^T [x; h]) (section 3.3 step 5).

Called with a plain crop batch [B, S, S, 3] (the shape-first init of train.py), the relation
net pairs every crop with itself and zero cues: every parameter gets its shape.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from hyperface_jax import registry
from hyperface_jax import tasks as _tasks
from hyperface_jax.models import hog as hog_lib
from hyperface_jax.models import resnet
from hyperface_jax.models.layers import norm_axis

NUM_CUES = 9  # data/pairs.py spatial_cues: 2 x (x, y, side), dx, dy, log side ratio
SMALL_STAGES = (1, 2, 4, 8)  # channel multipliers of the small conv net's four stages


class SmallConvNet(nn.Module):
  """Four stages of conv3x3/2-BN-ReLU then conv3x3-BN-ReLU, widths width x (1, 2, 4, 8),
  then global average pooling: the default CPU-scale backbone (layer sizes are [?] in
  docs/papers.md 3.2). Strided convs rather than max pooling: XLA's max-pool gradient is
  ~10x slower on CPU (measured: docs/social.md)."""

  width: int = 16
  norm_axis_name: Any = None

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    for i, mult in enumerate(SMALL_STAGES):
      for j, stride in enumerate((2, 1)):
        name = f"conv{i + 1}{'ab'[j]}"
        x = nn.Conv(
          self.width * mult, (3, 3), (stride, stride), padding="SAME", use_bias=False, name=name
        )(x)
        x = nn.BatchNorm(
          use_running_average=not train,
          momentum=0.9,
          axis_name=norm_axis(self.norm_axis_name) if train else None,
          name=f"bn{i + 1}{'ab'[j]}",
        )(x)
        x = nn.relu(x)
    return jnp.mean(x, axis=(1, 2))


class Bridging(nn.Module):
  """h = standardised L2 distances of the crop's HOG to the cluster templates (3.3).

  Attributes:
    num_templates: K (10 + 10 x (10 + 10) = 210 for the paper's hierarchy).
    orientations, pixels_per_cell, cells_per_block: HOG settings (models/hog.py).
  """

  num_templates: int = 210
  orientations: int = 9
  pixels_per_cell: int = 8
  cells_per_block: int = 2

  @nn.compact
  def __call__(self, images: jax.Array) -> jax.Array:
    grey = jnp.mean(images.astype(jnp.float32), axis=-1)
    feats = hog_lib.hog(grey, self.orientations, self.pixels_per_cell, self.cells_per_block)
    k, d = self.num_templates, feats.shape[-1]
    templates = self.variable("bridging", "templates", jnp.zeros, (k, d), jnp.float32)
    mean = self.variable("bridging", "h_mean", jnp.zeros, (k,), jnp.float32)
    std = self.variable("bridging", "h_std", jnp.ones, (k,), jnp.float32)
    h = hog_lib.template_distances(feats, templates.value)
    return jax.lax.stop_gradient((h - mean.value) / jnp.maximum(std.value, 1e-6))


def bridging_kwargs(bridging: Optional[Mapping]) -> Optional[dict]:
  """The Bridging module's settings from `config.model.bridging` (None when disabled)."""
  if not bridging or not bridging.get("enabled", False):
    return None
  clusters = tuple(bridging.get("clusters", (10, 10, 10)))
  return dict(
    num_templates=clusters[0] * (1 + clusters[1] + clusters[2]),
    orientations=int(bridging.get("orientations", 9)),
    pixels_per_cell=int(bridging.get("pixels_per_cell", 8)),
    cells_per_block=int(bridging.get("cells_per_block", 2)),
  )


class FaceBranch(nn.Module):
  """Backbone -> x = relu(fc_feature) [-> [x; h] with the bridging layer].

  Attributes:
    backbone: "small" (SmallConvNet) or "resnet26" / "resnet50" / "resnet101" /
      "resnet152" (models/resnet.py; res5 globally average-pooled).
    width: small net base width, or the ResNet base width.
    feature_dim: width of x.
    dropout: rate on x in training.
    bridging: config.model.bridging (dict with enabled, clusters and the HOG settings).
    norm_axis_name: mesh axis of synchronised BatchNorm statistics.
  """

  backbone: str = "small"
  width: int = 16
  feature_dim: int = 128
  dropout: float = 0.0
  bridging: Optional[Mapping] = None
  norm_axis_name: Any = None

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    if self.backbone == "small":
      y = SmallConvNet(self.width, self.norm_axis_name, name="backbone")(x, train)
    elif self.backbone.startswith("resnet") and self.backbone[6:].isdigit():
      depth = int(self.backbone[6:])
      net = resnet.ResNet(
        depth, base_width=self.width, norm_axis_name=self.norm_axis_name, name="backbone"
      )
      y = resnet.global_avg_pool(net(x, train)["res5"])
    else:
      raise ValueError(
        f"config.model.backbone={self.backbone!r}: expected 'small' or 'resnet<depth>' "
        f"with depth in {sorted(resnet.DEPTHS)}."
      )
    y = nn.relu(nn.Dense(self.feature_dim, name="fc_feature")(y))
    y = nn.Dropout(self.dropout, deterministic=not train)(y)
    settings = bridging_kwargs(self.bridging)
    if settings is not None:
      y = jnp.concatenate([y, Bridging(**settings, name="bridging")(x)], axis=-1)
    return y


def logit_offsets(class_priors: Optional[Mapping], tau: float = 1.0) -> dict:
  """{task: tau * log(prior) [C]}: the training-time logit offsets of the logit-adjusted
  softmax cross-entropy (Menon et al., "Long-tail learning via logit adjustment", ICLR
  2021). Training on logits + tau log(prior) and predicting from the plain logits minimises
  the balanced (mean per-class) error instead of the plain error: the rare classes are not
  traded for the frequent ones. Priors are normalised to sum to 1."""
  out = {}
  for name, prior in dict(class_priors or {}).items():
    prior = np.asarray(prior, np.float64)  # config constants: numpy, never traced
    if prior.ndim != 1 or not np.all(prior > 0):
      raise ValueError(f"class_priors[{name!r}] must be positive class frequencies; got {prior}.")
    out[name] = jnp.asarray(float(tau) * np.log(prior / prior.sum()), jnp.float32)
  return out


class AttributeHeads(nn.Module):
  """One linear classifier / regressor per task on the branch feature (3.3 step 5).

  Attributes:
    tasks: the task names (one head each, tasks.py output shapes).
    class_priors: {task: training class frequencies} of the softmax tasks trained with the
      logit-adjusted (class-balanced) loss: in training (`train=True`) their logits are
      offset by `logit_tau * log(prior)` (`logit_offsets`); evaluation and the relation
      network read the plain logits. None: the plain softmax cross-entropy.
    logit_tau: the adjustment's temperature (1: the balanced error's Bayes classifier).
  """

  tasks: Sequence[str] = ()
  class_priors: Optional[Mapping] = None
  logit_tau: float = 1.0

  @nn.compact
  def __call__(self, feature: jax.Array, train: bool = False) -> dict:
    offsets = logit_offsets(self.class_priors, self.logit_tau)  # checked in eval too
    out = {}
    for name in self.tasks:
      shape = tuple(_tasks.get(name).output_shape)
      size = 1
      for s in shape:
        size *= s
      y = nn.Dense(size, name=name)(feature)
      if name in offsets:
        if offsets[name].shape != (size,):
          raise ValueError(
            f"class_priors[{name!r}] has {offsets[name].shape[0]} classes; the head {size}."
          )
        if train:
          y = y + offsets[name]
      out[name] = y.reshape((feature.shape[0],) + shape).astype(jnp.float32)
    return out


class RelationHead(nn.Module):
  """[f_a; f_b (; cues)] -> BatchNorm -> two hidden fully connected layers -> trait
  logits (3.2). The input BatchNorm puts the 9 cues (spreads ~0.2) on the scale of the
  hundreds of face-feature values; without it the head ignored them for the first
  thousand steps (docs/social.md)."""

  width: int = 256
  dropout: float = 0.3
  num_traits: int = len(_tasks.RELATION_TRAITS)
  norm_axis_name: Any = None

  @nn.compact
  def __call__(self, y: jax.Array, train: bool = False) -> jax.Array:
    y = nn.BatchNorm(
      use_running_average=not train,
      momentum=0.9,
      axis_name=norm_axis(self.norm_axis_name) if train else None,
      name="bn_in",
    )(y)
    for i in (1, 2):
      y = nn.relu(nn.Dense(self.width, name=f"fc{i}")(y))
      y = nn.Dropout(self.dropout, deterministic=not train)(y)
    return nn.Dense(self.num_traits, name="out")(y).astype(jnp.float32)


_BRANCH_FIELDS = ("backbone", "width", "feature_dim", "dropout", "bridging", "norm_axis_name")


@registry.MODELS.register("social_attributes")
class SocialAttributeNet(nn.Module):
  """The face branch with its attribute heads (attributes as FaceBranch, plus `tasks`, and
  AttributeHeads' `class_priors` / `logit_tau`: the class-balanced expression loss)."""

  tasks: Sequence[str] = ("expression", "gender", "pose", "age_group")
  backbone: str = "small"
  width: int = 16
  feature_dim: int = 128
  dropout: float = 0.0
  bridging: Optional[Mapping] = None
  norm_axis_name: Any = None
  class_priors: Optional[Mapping] = None
  logit_tau: float = 1.0

  @nn.compact
  def __call__(self, images: jax.Array, train: bool = False) -> dict:
    kwargs = {k: getattr(self, k) for k in _BRANCH_FIELDS}
    feature = FaceBranch(**kwargs, name="branch")(images, train)
    heads = AttributeHeads(tuple(self.tasks), self.class_priors, self.logit_tau, name="heads")
    return heads(feature, train)


@registry.MODELS.register("social_relation")
class SocialRelationNet(nn.Module):
  """Siamese relation network (module docstring).

  Attributes:
    attribute_tasks: the attribute heads kept from the attribute run (their outputs are
      reported per face as "faces/<task>"); the branch fields as FaceBranch.
    use_cues: concatenate the pair's spatial cues to the two face features.
    relation_width: width of the two hidden fully connected layers of the relation head.
    relation_dropout: dropout after each of them in training.
    num_traits: relation outputs (8, docs/papers.md 3.1).
    use_attributes: also give the relation head each face's attribute predictions
      (softmax / sigmoid probabilities, pose values): a linear function of the feature,
      but one the head finds at once (docs/social.md).
    relation_input: "features" gives the relation head each face's branch feature [x; h]
      (with the predictions when `use_attributes`); "attributes" only the attribute
      predictions: 22 numbers a face instead of ~360, which the head cannot memorise on a
      few thousand training pairs (docs/social.md).
    train_branch: False keeps the face branch and its attribute heads as loaded (no
      gradient into them, BatchNorm on its running statistics): the relation head learns
      on the attribute predictions, which stay those of the attribute run, at about a
      third of the training cost. True trains all of it end to end.
  """

  attribute_tasks: Sequence[str] = ("expression", "gender", "pose", "age_group")
  backbone: str = "small"
  width: int = 16
  feature_dim: int = 128
  dropout: float = 0.0
  bridging: Optional[Mapping] = None
  norm_axis_name: Any = None
  use_cues: bool = True
  relation_width: int = 256
  relation_dropout: float = 0.3
  num_traits: int = len(_tasks.RELATION_TRAITS)
  train_branch: bool = True
  use_attributes: bool = True
  relation_input: str = "features"

  def setup(self):
    kwargs = {k: getattr(self, k) for k in _BRANCH_FIELDS}
    self.branch = FaceBranch(**kwargs)
    self.heads = AttributeHeads(tuple(self.attribute_tasks))
    self.relation = RelationHead(
      self.relation_width, self.relation_dropout, self.num_traits, self.norm_axis_name
    )

  def embed(self, crops: jax.Array, train: bool = False):
    """Face crops [N, S, S, 3] -> (relation features [N, F'], {task: attribute output}):
    the branch feature, with the attribute predictions when `use_attributes`."""
    feature = self.branch(crops, train and self.train_branch)
    attrs = self.heads(feature)
    if not self.train_branch:
      # Frozen face = branch AND attribute heads: with the heads trainable, the relation
      # loss re-purposed them (measured: the :cpu relation run's per-face outputs fell to
      # 0.38 expression accuracy and 104 deg yaw error on the test pair faces, against
      # 0.47 and 21 deg for its attribute run), losing the attributes the traits need.
      feature = jax.lax.stop_gradient(feature)
      attrs = jax.lax.stop_gradient(attrs)
    if self.relation_input not in ("features", "attributes"):
      raise ValueError(f"relation_input={self.relation_input!r}: 'features' or 'attributes'.")
    if not self.use_attributes and self.relation_input == "features":
      return feature, attrs
    parts = [feature] if self.relation_input == "features" else []
    for name, value in attrs.items():
      loss = _tasks.get(name).loss
      value = value.reshape(value.shape[0], -1)
      if loss == "softmax_cross_entropy":
        value = jax.nn.softmax(value)
      elif loss == "sigmoid_cross_entropy":
        value = jax.nn.sigmoid(value)
      parts.append(value)
    return jnp.concatenate(parts, axis=-1), attrs

  def relate(self, feat_a, feat_b, cues, train: bool = False) -> jax.Array:
    """Trait logits [B, 8] of the ordered pairs (a, b) from their features and cues."""
    parts = [feat_a, feat_b] + ([cues.astype(jnp.float32)] if self.use_cues else [])
    return self.relation(jnp.concatenate(parts, axis=-1), train)

  def __call__(self, inputs, train: bool = False) -> dict:
    if isinstance(inputs, Mapping):
      faces, cues = inputs["faces"], inputs["cues"]
    else:  # a crop batch (shape-first init): each crop paired with itself, no cues
      faces = jnp.stack([inputs, inputs], axis=1)
      cues = jnp.zeros((inputs.shape[0], NUM_CUES), jnp.float32)
    b = faces.shape[0]
    feature, attrs = self.embed(faces.reshape((2 * b,) + faces.shape[2:]), train)
    feature = feature.reshape((b, 2) + feature.shape[1:])
    out = {"relations": self.relate(feature[:, 0], feature[:, 1], cues, train)}
    for name, value in attrs.items():
      out[f"faces/{name}"] = value.reshape((b, 2) + value.shape[1:])
    return out
