"""The face analyzer: images in, faces out (docs/papers.md section 1.8; docs/design.md section 4).

  analyzer = FaceAnalyzer.from_workdir("runs/demo", **{"nms.top_k": 3})
  faces = analyzer([image_a, image_b])     # list (per image) of list of Face
  arrays = analyzer.padded([image_a])      # dict of [B, max_faces, ...] + "mask"
  analyzer.timings                          # seconds per stage of the last call
  FaceAnalyzer.from_export("exports/demo")  # an ONNX export, onnxruntime, no JAX imported

Pipeline per call, over all images together: proposals (registry.PROPOSALS) -> batched
network pass (inference/batched.py, bucketed batches) -> Iterative Region Proposals
(inference/irp.py) -> landmark-based NMS or plain NMS (inference/lnms.py) -> box
refinement (inference/box_refine.py).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import time
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence

import numpy as np

from hyperface_jax.inference import box_refine, irp, lnms, proposals
from hyperface_jax.inference import config as config_lib

if TYPE_CHECKING:  # batched imports JAX: only `from_workdir` needs it (from_export runs without)
  from hyperface_jax.inference import batched

STAGES = ("proposals", "network", "irp", "lnms", "box_refine")
# Where `make demo` puts the demo's proposal net (configs/fast_hyperface.py:cpu): a workdir
# inside the HyperFace workdir, found by `from_workdir` (`proposals.name="auto"`).
PROPOSAL_SUBDIR = "proposals"


def _clock():
  """(wall, process CPU) seconds: on a shared machine the CPU time of the process (all its
  threads) is the part of the latency that does not depend on the other jobs."""
  return time.perf_counter(), time.process_time()


def resolve_proposals(config, workdir: Optional[str] = None):
  """`config` with `proposals.name="auto"` (the default) made concrete: "learned" when a
  proposal net is configured (`proposals.learned.workdir`) or found in
  `<workdir>/proposals` (where `make demo` trains it), else "sliding_window" (works
  with the HyperFace run alone, but runs the network on every window: seconds per
  640x480 image instead of ~0.1 s, docs/inference.md latency)."""
  learned = config.proposals.learned
  if not learned.workdir and workdir:
    candidate = os.path.join(workdir, PROPOSAL_SUBDIR)
    if os.path.isfile(os.path.join(candidate, "config.json")):
      config = config_lib.with_overrides(config, {"proposals.learned.workdir": candidate})
  if config.proposals.name != "auto":
    return config
  if config.proposals.learned.workdir:
    return config_lib.with_overrides(config, {"proposals.name": "learned"})
  if workdir:  # a programmatic FaceAnalyzer(network) asked for no particular run: no warning
    logging.warning(
      "No proposal net (%s/%s or proposals.learned.workdir): using the sliding-window "
      "pyramid, which runs the network on every window (slow on large images). `make demo` "
      "trains one: python -m hyperface_jax.main --config=configs/fast_hyperface.py:cpu "
      "--workdir=<workdir>/%s",
      workdir or "<workdir>",
      PROPOSAL_SUBDIR,
      PROPOSAL_SUBDIR,
    )
  return config_lib.with_overrides(config, {"proposals.name": "sliding_window"})


@dataclasses.dataclass
class Face:
  """One analysed face, in image pixels.

  Attributes:
    box: [4] x, y, w, h (AFLW-style square box; continuous frame of data/boxes.py).
    score: face probability of the box.
    landmarks: [21, 2] AFLW-21 points (docs/papers.md 1.13), x right, y down, 0-based.
    visibility: [21] probability that each landmark is visible.
    pose: [3] roll, pitch, yaw in RADIANS (AFLW signs).
    p_female: probability that the face is female (gender 1).
  """

  box: np.ndarray
  score: float
  landmarks: np.ndarray
  visibility: np.ndarray
  pose: np.ndarray
  p_female: float

  def to_json(self) -> Dict[str, Any]:
    """The docs/design.md section 4 form: pose in DEGREES, gender label + p_female."""
    roll, pitch, yaw = (float(math.degrees(a)) for a in np.asarray(self.pose, np.float64))
    return {
      "box": [float(v) for v in self.box],
      "score": float(self.score),
      "landmarks": [[float(x), float(y)] for x, y in np.asarray(self.landmarks)],
      "visibility": [float(v) for v in self.visibility],
      "pose": {"roll": roll, "pitch": pitch, "yaw": yaw},
      "gender": {
        "label": "female" if self.p_female >= 0.5 else "male",
        "p_female": float(self.p_female),
      },
    }


def _check_images(images) -> List[np.ndarray]:
  if isinstance(images, np.ndarray) and images.ndim == 3:
    raise ValueError(
      "FaceAnalyzer takes a SEQUENCE of images; wrap a single image in a list: analyzer([image])."
    )
  out = []
  for i, img in enumerate(images):
    img = np.asarray(img)
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3 or min(img.shape[:2]) < 1:
      raise ValueError(
        f"images[{i}] must be uint8 RGB [H, W, 3]; got {img.dtype} "
        f"{img.shape} (convert grayscale/RGBA/16-bit first)."
      )
    out.append(img)
  return out


class FaceAnalyzer:
  """Batched HyperFace test-time pipeline (docs/papers.md 1.8) on a trained model.

  Attributes:
    config: the pipeline settings (inference/config.py), locked.
    network: the BatchedNetwork (bucketed batches, one compilation per bucket), or the
      onnx_network.OnnxNetwork of `from_export`.
    timings: seconds per stage (STAGES: "proposals", "network", "irp", "lnms",
      "box_refine") of the last call,
      summed over its images, plus "total"; "<stage>_cpu" / "total_cpu" are the process
      CPU seconds of the same stages (all threads; independent of other jobs' load).
  """

  def __init__(self, network: batched.BatchedNetwork, config=None, **overrides):
    self.config = resolve_proposals(
      config_lib.with_overrides(config or config_lib.inference_config(), overrides)
    )
    if self.config.box_refine.enabled:
      box_refine.settings(self.config.box_refine)  # a bad value fails here, naming it
    self.network = network
    self.network.flip_test = bool(self.config.flip_test)
    if self.network.batch_size != self.config.batch_size:
      # The batch size is part of the compiled shape: a new one compiles once more.
      self.network.batch_size = int(self.config.batch_size)
    if hasattr(self.network, "min_bucket"):  # the ONNX network pads only fixed-batch exports
      self.network.min_bucket = int(self.config.min_bucket)
    self._proposer = None
    self.timings: Dict[str, float] = {s: 0.0 for s in STAGES}

  @classmethod
  def from_workdir(cls, workdir: str, step: Optional[int] = None, **overrides) -> "FaceAnalyzer":
    """Builds the analyzer from a training workdir (config.json + orbax checkpoints).

    Args:
      workdir: a directory written by `python -m hyperface_jax.main`.
      step: checkpoint step; None = the latest.
      **overrides: pipeline settings, dotted keys as strings via `**{"nms.top_k": 3}`
        or sections as dicts (`nms={"top_k": 3}`).
    """
    from hyperface_jax.inference import batched

    train_config = batched.load_workdir_config(workdir)
    model, variables, _ = batched.load_variables(train_config, workdir, step)
    config = config_lib.with_overrides(config_lib.inference_config(), overrides)
    config = resolve_proposals(config, workdir)
    network = batched.BatchedNetwork(
      model,
      variables,
      input_size=train_config.input_size,
      normalize=train_config.data.get("normalize", "minus_half"),
      batch_size=config.batch_size,
      flip_test=config.flip_test,
      min_bucket=config.min_bucket,
    )
    return cls(network, config)

  @classmethod
  def from_export(cls, directory: str, **overrides) -> "FaceAnalyzer":
    """Builds the analyzer on an exported ONNX model, run by onnxruntime without JAX.

    Args:
      directory: a folder written by `python -m hyperface_jax.export --format=onnx` from a
        HyperFace run (model.onnx + preprocessing.json; docs/export.md).
      **overrides: pipeline settings, as in `from_workdir`. The "learned" proposals need
        JAX (inference/fast_proposals.py); the other generators do not.
    """
    from hyperface_jax.inference import onnx_network

    config = config_lib.with_overrides(config_lib.inference_config(), overrides)
    network = onnx_network.OnnxNetwork(
      directory, batch_size=config.batch_size, flip_test=config.flip_test
    )
    return cls(network, config)

  @property
  def proposer(self):
    if self._proposer is None:
      self._proposer = proposals.make_proposer(self.config.proposals)
    return self._proposer

  def _propose(self, images):
    out = []
    for img in images:
      boxes = np.asarray(self.proposer(img), np.float64).reshape(-1, 4)
      out.append(boxes[: self.config.max_proposals])
    return out

  def score_proposals(self, images: Sequence[np.ndarray]) -> List[Dict[str, np.ndarray]]:
    """Stages 1-2: proposals and the batched network pass (per image, per proposal)."""
    images = _check_images(images)
    t0 = _clock()
    regions = self._propose(images)
    t1 = _clock()
    dets = self.network(images, regions)
    t2 = _clock()
    self.timings = {
      "proposals": t1[0] - t0[0],
      "network": t2[0] - t1[0],
      "proposals_cpu": t1[1] - t0[1],
      "network_cpu": t2[1] - t1[1],
      "num_proposals": float(sum(len(r) for r in regions)),
    }
    return dets

  def refine(
    self, images: Sequence[np.ndarray], dets: List[Dict[str, np.ndarray]], config=None
  ) -> List[Dict[str, np.ndarray]]:
    """Stages 3-5: IRP, (landmark) NMS and box refinement, with `config` (default
    self.config)."""
    cfg = config or self.config
    images = _check_images(images)
    t2 = _clock()
    iterations = cfg.irp.iterations if cfg.irp.enabled else 0
    dets = irp.iterative_region_proposals(
      self.network,
      images,
      dets,
      iterations=iterations,
      score_threshold=cfg.irp.score_threshold,
      tie_tolerance=cfg.irp.tie_tolerance,
      max_candidates=cfg.irp.max_candidates,
      keep=cfg.irp.keep,
      visibility_threshold=cfg.nms.visibility_threshold,
    )
    t3 = _clock()
    score_mode = group_score_mode(cfg)
    out = []
    for img, d in zip(images, dets, strict=True):
      if cfg.nms.method == "lnms":
        d = lnms.landmark_nms(
          d,
          img.shape[:2],
          iou_threshold=cfg.nms.iou_threshold,
          top_k=cfg.nms.top_k,
          score_threshold=cfg.nms.score_threshold,
          visibility_threshold=cfg.nms.visibility_threshold,
          score_mode=score_mode,
          group_by=cfg.nms.group_by,
          output_box=cfg.nms.output_box,
        )
      elif cfg.nms.method == "plain":
        d = lnms.plain_nms(
          d, cfg.nms.iou_threshold, cfg.nms.score_threshold, score_mode, cfg.nms.top_k
        )
      elif cfg.nms.method == "none":
        d = lnms.select(d, np.argsort(-d["score"], kind="stable"))
        d = lnms.select(d, d["score"] >= cfg.nms.score_threshold)
      else:
        raise ValueError(f"nms.method must be 'lnms', 'plain' or 'none'; got {cfg.nms.method!r}.")
      d = lnms.select(d, np.asarray(d["score"]) >= cfg.detection_threshold)
      out.append(lnms.select(d, np.arange(min(len(d["score"]), cfg.max_faces))))
    t4 = _clock()
    if cfg.box_refine.enabled:
      out = box_refine.refine_boxes(
        self.network, images, out, **box_refine.settings(cfg.box_refine)
      )
    t5 = _clock()
    self.timings.update(
      {
        "irp": t3[0] - t2[0],
        "lnms": t4[0] - t3[0],
        "box_refine": t5[0] - t4[0],
        "irp_cpu": t3[1] - t2[1],
        "lnms_cpu": t4[1] - t3[1],
        "box_refine_cpu": t5[1] - t4[1],
      }
    )
    return out

  def detect(self, images: Sequence[np.ndarray]) -> List[Dict[str, np.ndarray]]:
    """The whole pipeline; per image a dict of arrays (box, score, landmarks, visibility,
    pose, p_female, ...) sorted by descending score. Sets `timings`."""
    dets = self.refine(images, self.score_proposals(images))
    self.timings["total"] = sum(self.timings[s] for s in STAGES)
    self.timings["total_cpu"] = sum(self.timings[f"{s}_cpu"] for s in STAGES)
    return dets

  def __call__(self, images: Sequence[np.ndarray]) -> List[List[Face]]:
    """Analyses every face of every image (each uint8 RGB [H, W, 3])."""
    result = []
    for d in self.detect(images):
      result.append(
        [
          Face(
            box=np.asarray(d["box"][i], np.float32),
            score=float(d["score"][i]),
            landmarks=np.asarray(d["landmarks"][i], np.float32),
            visibility=np.asarray(d["visibility"][i], np.float32),
            pose=np.asarray(d["pose"][i], np.float32),
            p_female=float(d["p_female"][i]),
          )
          for i in range(len(d["score"]))
        ]
      )
    return result

  def padded(self, images: Sequence[np.ndarray]) -> Dict[str, np.ndarray]:
    """The jit-friendly form: arrays [B, max_faces, ...] and a bool "mask" [B, max_faces].

    Keys: box [B, F, 4], score [B, F], landmarks [B, F, 21, 2], visibility [B, F, 21],
    pose [B, F, 3] radians, p_female [B, F], mask [B, F]; F = config.max_faces, rows past
    an image's face count are zero with mask False.
    """
    return pad_detections(self.detect(images), self.config.max_faces)


_PAD_SHAPES = {
  "box": (4,),
  "score": (),
  "landmarks": (21, 2),
  "visibility": (21,),
  "pose": (3,),
  "p_female": (),
}


def group_score_mode(config) -> str:
  """`nms.score_mode` with "auto" resolved for the configured proposal generator."""
  mode = config.nms.score_mode
  if mode != "auto":
    return mode
  return "max" if config.proposals.name in proposals.ONE_BOX_PER_FACE else "top_k_mean"


def pad_detections(dets: Sequence[Dict[str, np.ndarray]], max_faces: int) -> Dict[str, np.ndarray]:
  """Stacks per-image detections into [B, max_faces, ...] float32 arrays + "mask"."""
  b = len(dets)
  out = {k: np.zeros((b, max_faces) + s, np.float32) for k, s in _PAD_SHAPES.items()}
  out["mask"] = np.zeros((b, max_faces), bool)
  for i, d in enumerate(dets):
    n = min(len(d["score"]), max_faces)
    for k in _PAD_SHAPES:
      out[k][i, :n] = np.asarray(d[k])[:n]
    out["mask"][i, :n] = True
  return out
