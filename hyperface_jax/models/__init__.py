"""Flax Linen models; importing this package registers them in registry.MODELS."""

from hyperface_jax.models import hyperface  # noqa: F401  (registers "hyperface_alexnet")
