"""TFDS builders of hyperface_jax; importing this package registers them with TFDS."""

from hyperface_jax.data.builders import (  # noqa: F401  (registers the builders)
  aflw,
  afw,
  celeba,
  expw,
  fddb,
  helen,
  lfwa,
  mafl,
  mtfl,
  social_relation,
  synth_faces,
  w300,
)
