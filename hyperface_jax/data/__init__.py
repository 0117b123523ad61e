"""Data: landmark schemes, synthetic renderer and TFDS builders.

Importing `hyperface_jax.data` registers the TFDS builders (hyperface_jax.data.builders);
the renderer and TensorFlow Datasets are imported lazily by that package only.
"""

from hyperface_jax.data import builders  # noqa: F401  (registers TFDS builders)
