"""The batched network pass: every region of every image through ONE compiled model.

Regions of any number of images of any sizes are cropped on the host exactly as in
training (`data.preprocess.crop_and_resize` + `normalize`), concatenated and cut into
batches of `batch_size`; the rest is padded up to the smallest *bucket* that holds it
(8, 16, 24, 32, then powers of two up to `batch_size`, `bucket_sizes`), so the jitted
model compiles at most once per bucket for the life of the object whatever the images
(docs/papers.md section 1.8 step 2), and 20 crops cost a batch of 24, not of 256.

Why crops are cut with OpenCV on the host and not with a jitted gather: the crop
size S is small (99 px demo, 227 px paper) and `cv2.warpAffine` cuts one S x S crop in
~10-30 us (bench/pipeline_latency.py), faster on a CPU than a jitted bilinear gather
over a padded image, which also would need a fixed padded image size to avoid a
recompilation per image size. Above all it is *the* training-time crop, so test crops
are bit-identical to training crops.
"""

from __future__ import annotations

import json
import os
from typing import Dict, List, Optional, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from hyperface_jax import registry
from hyperface_jax.data import preprocess
from hyperface_jax.data.boxes import denormalize_landmarks
from hyperface_jax.inference.crop_network import CropNetwork


def load_workdir_config(workdir: str) -> ml_collections.ConfigDict:
  """Reads `workdir/config.json` (written by train.py) into a ConfigDict."""
  path = os.path.join(workdir, "config.json")
  if not os.path.isfile(path):
    raise FileNotFoundError(
      f"{path} not found: expected a training workdir with "
      "config.json and checkpoints/ (python -m hyperface_jax.main)."
    )
  with open(path) as f:
    try:
      return ml_collections.ConfigDict(json.load(f))
    except json.JSONDecodeError as e:
      raise ValueError(f"{path} is not valid JSON: {e}") from None


def load_variables(config, workdir: str, step: Optional[int] = None):
  """Restores the model variables (params + e.g. batch_stats) of a training workdir.

  Reads only the params and model_state of the checkpoint (checkpointing.restore_variables,
  the restore path shared with model_init and surgery: no train state, optimiser or loss
  is built) and puts them on one device.

  Returns:
    (model built with the saved config, variables dict, checkpoint step restored).
  """
  from hyperface_jax import checkpointing  # orbax: only when a checkpoint is read

  item = checkpointing.resolve_checkpoint(workdir, None if step is None else int(step))
  variables = checkpointing.restore_variables(item)
  device = jax.local_devices()[0]
  return (
    inference_model(config),
    jax.device_put(variables, device),
    checkpointing.checkpoint_step(item),
  )


def inference_model(config):
  """The model of `config` for single-device inference (no cross-device BatchNorm; XLA's
  convolutions and pools: `conv_impl` and `pool_impl` only change gradients,
  models/fast_conv.py and fast_pool.py, and a plain forward pass keeps the exported
  programs free of custom-gradient calls)."""
  kwargs = dict(config.model)
  if "norm_axis_name" in kwargs:
    kwargs["norm_axis_name"] = None
  for key in ("conv_impl", "pool_impl"):
    if key in kwargs:
      kwargs[key] = "xla"
  return registry.MODELS.get(config.model_name)(**kwargs)


_EMPTY_OUTPUTS = {
  "score": np.zeros(0, np.float32),
  "score_logit": np.zeros(0, np.float32),
  "p_female": np.zeros(0, np.float32),
  "landmarks": np.zeros((0, 21, 2), np.float32),
  "visibility": np.zeros((0, 21), np.float32),
  "pose": np.zeros((0, 3), np.float32),
}


def bucket_sizes(batch_size: int, min_bucket: int = 8) -> List[int]:
  """The padded batch sizes below `batch_size`, then `batch_size` itself: m, 2m, 3m, 4m,
  then doubling, where m is the smallest power of two >= min(min_bucket, batch_size)
  (bucket_sizes(256) = [8, 16, 24, 32, 64, 128, 256]). The small steps keep the padding
  of the few-dozen-crop batches the default pipeline runs under m crops."""
  if batch_size < 1 or min_bucket < 1:
    raise ValueError(f"batch_size and min_bucket must be >= 1; got {batch_size}, {min_bucket}.")
  m = 1
  while m < min(min_bucket, batch_size):
    m *= 2
  sizes = [m, 2 * m, 3 * m, 4 * m]
  while sizes[-1] < batch_size:
    sizes.append(2 * sizes[-1])
  return [b for b in sizes if b < batch_size] + [int(batch_size)]


def batch_plan(n: int, batch_size: int, min_bucket: int = 8) -> List[tuple]:
  """(start, stop, padded size) of the batches that carry `n` crops: full batches of
  `batch_size`, then the rest padded to the smallest bucket that holds it."""
  buckets = bucket_sizes(batch_size, min_bucket)
  plan = []
  for start in range(0, n, batch_size):
    stop = min(n, start + batch_size)
    plan.append((start, stop, next(b for b in buckets if b >= stop - start)))
  return plan


class BatchedNetwork(CropNetwork):
  """Runs the multi-task model on regions of many images in bucketed batches.

  Attributes:
    traces: how many times the model function was traced (once per bucket size used;
      tests use it to check that nothing recompiles per image).
    min_bucket: the smallest padded batch (bucket_sizes); `min_bucket >= batch_size`
      gives the old single fixed batch.
  """

  def __init__(
    self,
    model,
    variables,
    *,
    input_size: int,
    normalize: str = "minus_half",
    batch_size: int = 256,
    flip_test: bool = False,
    min_bucket: int = 8,
  ):
    if batch_size < 1:
      raise ValueError(f"batch_size must be >= 1; got {batch_size}.")
    self.input_size = int(input_size)
    self.normalize = normalize
    self.batch_size = int(batch_size)
    self.min_bucket = int(min_bucket)
    # Horizontal-flip test-time augmentation (as config.flip_test in evaluation/runner.py):
    # each crop also runs mirrored, and the mirrored outputs, mapped back with
    # preprocess.flip_labels, are averaged with the plain ones (probabilities for the
    # face score and gender). Documented default off; twice the network time.
    self.flip_test = bool(flip_test)
    self.variables = variables
    self.traces = 0

    def forward(variables, images):
      self.traces += 1  # Python side effect: runs once per trace only
      out = model.apply(variables, images, train=False)
      res = {}
      if "detection" in out:
        res["score"] = jax.nn.softmax(out["detection"], axis=-1)[:, 1]
        # The log-odds of "score", which does not saturate where the softmax rounds to
        # 1.0: box refinement (inference/box_refine.py) weighs windows by it.
        res["score_logit"] = out["detection"][:, 1] - out["detection"][:, 0]
      if "gender" in out:
        res["p_female"] = jax.nn.softmax(out["gender"], axis=-1)[:, 1]
      if "visibility" in out:
        res["visibility"] = jnp.clip(out["visibility"], 0.0, 1.0)  # MSE-trained (1.6)
      for k in ("landmarks", "pose"):
        if k in out:
          res[k] = out[k]
      return res

    self._forward = jax.jit(forward)

  def _run_crops(self, crops: np.ndarray) -> Dict[str, np.ndarray]:
    n = len(crops)
    outs = []
    for start, stop, size in batch_plan(n, self.batch_size, self.min_bucket):
      chunk = preprocess.normalize(crops[start:stop], self.normalize)
      if len(chunk) < size:
        pad = np.zeros((size - len(chunk),) + chunk.shape[1:], np.float32)
        chunk = np.concatenate([chunk, pad], 0)
      outs.append(self._forward(self.variables, chunk))
    if not outs:
      return {}
    host = jax.device_get(outs)
    return {k: np.concatenate([o[k] for o in host], 0)[:n] for k in host[0]}

  def __call__(
    self, images: Sequence[np.ndarray], regions: Sequence[np.ndarray]
  ) -> list[Dict[str, np.ndarray]]:
    """Per image: score [N], landmarks [N, 21, 2] px, visibility [N], pose [N, 3],
    p_female [N] for its regions [N, 4] (landmarks de-normalized, docs/papers.md 1.5)."""
    regions = [np.asarray(r, np.float64).reshape(-1, 4) for r in regions]
    out = self.run_crops(self.crops(images, regions)) or _EMPTY_OUTPUTS
    result, start = [], 0
    for reg in regions:
      stop = start + len(reg)
      part = {k: v[start:stop] for k, v in out.items()}
      if "landmarks" in part:
        part["landmarks"] = denormalize_landmarks(part["landmarks"], reg)
      part["box"] = reg
      result.append(part)
      start = stop
    return result
