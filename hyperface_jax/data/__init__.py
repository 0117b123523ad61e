"""Data: landmark schemes, boxes, the synthetic renderer, region sampling and TFDS builders.

Importing `hyperface_jax.data` (or any light module of it: schemes, boxes, preprocess,
sampling, face_model, face_rect) loads neither TensorFlow nor TensorFlow Datasets; the
TFDS builders register when `hyperface_jax.data.builders.register_all()` runs (the code
that looks datasets up by name calls it).
"""
