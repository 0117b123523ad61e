"""TFDS builders of hyperface_jax; importing this package registers them with TFDS."""

from hyperface_jax.data.builders import synth_faces  # noqa: F401  (registers the builders)
