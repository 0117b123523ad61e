"""Flax Linen models; importing this package registers them in registry.MODELS."""

from hyperface_jax.models import (
  classifiers,  # noqa: F401  (resnet50/101/152, alexnet_*)
  fast_proposal_net,  # noqa: F401  ("fast_proposal_net", Fast-HyperFace proposals)
  hyperface,  # noqa: F401  (registers "hyperface_alexnet")
  hyperface_resnet,  # noqa: F401  ("hyperface_resnet")
  rcnn_face,  # noqa: F401  ("rcnn_face_alexnet")
)
