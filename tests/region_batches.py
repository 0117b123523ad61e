"""Random HyperFace region batches for the train-step tests (test_steps, test_weighting)."""

import numpy as np


def random_region_batch(rng, n, size, pose_gender_fraction=0.5):
  """A region batch of the five HyperFace tasks with uneven masks, so per-device label
  counts differ; `pose_gender_fraction` of the examples carry pose and gender labels."""
  return dict(
    image=rng.uniform(-0.5, 0.5, size=(n, size, size, 3)).astype(np.float32),
    detection=rng.integers(0, 2, n).astype(np.int32),
    detection_mask=(rng.random(n) < 0.8).astype(np.float32),
    landmarks=rng.normal(scale=0.2, size=(n, 21, 2)).astype(np.float32),
    visibility=(rng.random((n, 21)) < 0.7).astype(np.float32),
    landmarks_mask=(rng.random(n) < 0.6).astype(np.float32),
    visibility_mask=(rng.random(n) < 0.6).astype(np.float32),
    pose=rng.normal(scale=0.5, size=(n, 3)).astype(np.float32),
    pose_mask=(rng.random(n) < pose_gender_fraction).astype(np.float32),
    gender=rng.integers(0, 2, n).astype(np.int32),
    gender_mask=(rng.random(n) < pose_gender_fraction).astype(np.float32),
    example_mask=np.ones(n, np.float32),
  )
