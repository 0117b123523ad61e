"""Region-level evaluator for the five HyperFace tasks, with trivial baselines.

The training loop builds it by name and feeds it host (numpy) eval batches:

  ev = EVALUATORS.get("hyperface_regions")(**config_kwargs)
  ev.set_baselines(**baseline_stats(train_regions))   # optional
  ev.reset()
  for batch, outputs in ...: ev.update(batch, outputs)
  results = ev.result()          # flat floats -> results.json
  results_json["protocol"] = ev.protocol()

Only rows with example_mask 1 count (eval batches are padded, never dropped),
and each task only where its own mask is 1 (region batch contract). Metrics of a
task with no counted row are left out of `result()`; its `count/*` is 0.
"""

from __future__ import annotations

import itertools

import numpy as np

from hyperface_jax import registry
from hyperface_jax.data.boxes import denormalize_landmarks  # re-exported (__all__)
from hyperface_jax.evaluation import metrics
from hyperface_jax.evaluation.baselines import baseline_stats, masked_rows
from hyperface_jax.evaluation.task_metrics import TaskMetricsEvaluator

__all__ = [
  "DEFAULT_YAW_BINS",
  "HyperFaceRegionEvaluator",
  "baseline_stats",
  "denormalize_landmarks",
]

# Label keys kept whole for the report's crops (region batch contract).
_EXAMPLE_KEYS = (
  "image_uint8",
  "landmarks",
  "visibility",
  "pose",
  "gender",
  "detection",
  "landmarks_mask",
  "visibility_mask",
  "pose_mask",
  "gender_mask",
  "detection_mask",
)
TASKS = ("landmarks", "visibility", "pose", "gender", "detection")
# docs/papers.md section 1.12: AFLW NME reported per |yaw| bin [0,30], [30,60], [60,90] deg.
DEFAULT_YAW_BINS = (0.0, 30.0, 60.0, 90.0)


def _softmax1(logits):
  """Probability of class 1 from [N, 2] logits (numerically stable)."""
  logits = np.asarray(logits, np.float64)
  return 1.0 / (1.0 + np.exp(logits[:, 0] - logits[:, 1]))


@registry.EVALUATORS.register("hyperface_regions")
class HyperFaceRegionEvaluator:
  """Accumulates region-level predictions and reports flat metrics.

  Landmark NME (docs/papers.md section 1.12 normalizes by face size; our region
  definition): predicted and true landmarks are de-normalized to scene pixels
  with `region`, the per-point Euclidean error is divided by the matched face
  box side sqrt(w * h) of `face_box`, and averaged over the visible points.
  NME is a fraction (x100 gives the paper's %). Yaw bins use |yaw| of the TRUE
  pose and only rows whose pose_mask is 1 (rows with landmarks but no pose go
  into `landmarks/nme` only); |yaw| beyond the last edge joins the last bin.
  """

  inputs = "regions"

  def __init__(
    self,
    yaw_bins=DEFAULT_YAW_BINS,
    auc_limit: float = 0.1,
    visibility_threshold: float = 0.5,
    baselines: dict | None = None,
    keep_examples: int = 16,
  ):
    """Args: yaw bin edges in degrees, the CED AUC / failure limit (fraction of
    face size), the visibility threshold, optional `baseline_stats` output, and
    how many real rows (labels, outputs, "image_uint8" if the batch has it) to
    keep whole for report/crops.png (`arrays()["examples/..."]`)."""
    self.keep_examples = int(keep_examples)
    edges = np.asarray(yaw_bins, np.float64)
    if edges.ndim != 1 or edges.size < 2 or np.any(np.diff(edges) <= 0):
      raise ValueError(f"yaw_bins must be >= 2 increasing edges in degrees; got {yaw_bins}.")
    self.yaw_bins = edges
    self.auc_limit = float(auc_limit)
    self.visibility_threshold = float(visibility_threshold)
    self._baselines = None
    self._others = TaskMetricsEvaluator(exclude=TASKS)
    if baselines is not None:
      self.set_baselines(**baselines)
    self.reset()

  def set_baselines(
    self,
    mean_landmarks,
    mean_pose,
    majority_gender,
    mean_visibility,
    majority_detection: int | None = None,
    task_constants: dict | None = None,
  ):
    """Sets trivial-baseline statistics (see `baseline_stats`); `task_constants` go to
    the generic evaluator of the other tasks (baseline/<task>/<metric>)."""
    self._others.set_baselines(task_constants=task_constants)
    mean_landmarks = np.asarray(mean_landmarks, np.float64)
    mean_visibility = np.asarray(mean_visibility, np.float64)
    mean_pose = np.asarray(mean_pose, np.float64)
    if mean_landmarks.ndim != 2 or mean_landmarks.shape[1] != 2:
      raise ValueError(f"mean_landmarks must be [K, 2]; got {mean_landmarks.shape}.")
    if mean_visibility.shape != mean_landmarks.shape[:1]:
      raise ValueError(
        f"mean_visibility must be [{mean_landmarks.shape[0]}]; got {mean_visibility.shape}."
      )
    if mean_pose.shape != (3,):
      raise ValueError(f"mean_pose must be [3] radians; got {mean_pose.shape}.")
    self._baselines = {
      "mean_landmarks": mean_landmarks,
      "mean_pose": mean_pose,
      "majority_gender": int(majority_gender),
      "mean_visibility": mean_visibility,
      "majority_detection": majority_detection,
    }

  def reset(self):
    """Forgets everything accumulated by `update`."""
    self._parts = {}
    self._count_examples = 0
    self._kept = 0
    self._others.reset()

  def _add(self, key, value):
    self._parts.setdefault(key, []).append(np.asarray(value))

  def update(self, batch: dict, outputs: dict):
    """Adds one eval batch (region batch contract) and its model outputs (numpy)."""
    example = np.asarray(batch["example_mask"]) > 0.5
    self._count_examples += int(example.sum())
    self._keep(batch, outputs, example)
    self._others.update(batch, outputs)  # tasks other than HyperFace's five

    def present(task):  # a run may have any subset of the five tasks
      return f"{task}_mask" in batch and task in outputs

    rows = masked_rows(batch, "landmarks_mask", example) if present("landmarks") else None
    if rows is not None and rows.any():
      face = np.asarray(batch["face_box"], np.float64)[rows]
      side = np.sqrt(face[:, 2] * face[:, 3])
      if np.any(~(side > 0)):
        raise ValueError(
          "face_box must have w, h > 0 where landmarks_mask is 1; got "
          f"{face[~(side > 0)][:3].tolist()}."
        )
      region = np.asarray(batch["region"])[rows]
      target = denormalize_landmarks(np.asarray(batch["landmarks"])[rows], region)
      pred = denormalize_landmarks(np.asarray(outputs["landmarks"])[rows], region)
      visible = np.asarray(batch["visibility"])[rows]
      self._add("landmarks/errors", metrics.nme(pred, target, visible, side))
      pose_ok = (np.asarray(batch.get("pose_mask", np.zeros(len(example)))) > 0.5)[rows]
      pose = np.asarray(batch.get("pose", np.zeros((len(example), 3))), np.float64)
      yaw = np.degrees(np.abs(pose[rows, 2]))
      self._add("landmarks/abs_yaw_deg", np.where(pose_ok, yaw, np.nan))
      # Kept so that baselines set after `update` still apply, and for the report.
      for key, value in (
        ("pred_px", pred),
        ("target_px", target),
        ("visible", visible),
        ("region", region),
        ("face_size", side),
      ):
        self._add(f"landmarks/{key}", value)
    rows_of = {t: masked_rows(batch, f"{t}_mask", example) for t in TASKS if present(t)}
    for key, source, fn in (
      ("visibility/pred", outputs, lambda v: np.asarray(v["visibility"], np.float64)),
      ("visibility/target", batch, lambda v: np.asarray(v["visibility"], np.float64)),
      ("pose/pred", outputs, lambda v: np.asarray(v["pose"], np.float64)),
      ("pose/target", batch, lambda v: np.asarray(v["pose"], np.float64)),
      ("gender/p_female", outputs, lambda v: _softmax1(v["gender"])),
      ("gender/label", batch, lambda v: np.asarray(v["gender"]).astype(np.int64)),
      ("detection/score", outputs, lambda v: _softmax1(v["detection"])),
      ("detection/label", batch, lambda v: np.asarray(v["detection"]).astype(np.int64)),
    ):
      task = key.split("/")[0]
      if task in rows_of:
        self._add(key, fn(source)[rows_of[task]])

  def _keep(self, batch, outputs, example):
    """Keeps the first `keep_examples` real rows whole (for the report's crops)."""
    room = self.keep_examples - self._kept
    if room <= 0:
      return
    idx = np.flatnonzero(example)[:room]
    self._kept += len(idx)
    for key in _EXAMPLE_KEYS:
      if key in batch:
        self._add(f"examples/{key}", np.asarray(batch[key])[idx])
    for key, value in outputs.items():
      self._add(f"examples/output/{key}", np.asarray(value)[idx])

  def arrays(self) -> dict[str, np.ndarray]:
    """Raw per-row arrays for the report (concatenated over batches).

    landmarks/* rows are aligned: errors (NaN: no visible point), abs_yaw_deg
    (NaN: pose unknown), pred_px / target_px [N, 21, 2] scene pixels, visible,
    region, face_size, and baseline_errors once baselines are set.
    examples/<label key> and examples/output/<output key>: the first
    `keep_examples` real rows whole (with examples/image_uint8 when the eval
    batches carry it). Other keys: visibility/pred|target [N, 21],
    pose/pred|target [N, 3] rad, gender/p_female|label, detection/score|label.
    """
    arr = {k: np.concatenate(v) for k, v in self._parts.items()}
    if self._baselines is not None and "landmarks/region" in arr:
      mean = np.broadcast_to(self._baselines["mean_landmarks"], arr["landmarks/target_px"].shape)
      arr["landmarks/baseline_errors"] = metrics.nme(
        denormalize_landmarks(mean, arr["landmarks/region"]),
        arr["landmarks/target_px"],
        arr["landmarks/visible"],
        arr["landmarks/face_size"],
      )
    return arr

  def protocol(self) -> dict[str, str]:
    """Human-readable protocol notes, written under "protocol" in results.json."""
    bins = ", ".join(f"[{a:g}, {b:g})" for a, b in itertools.pairwise(self.yaw_bins))
    return self._others.protocol() | {
      "landmarks/nme": (
        "docs/papers.md 1.12 (face-size NME) on regions: predictions and targets "
        "de-normalized to scene pixels with `region`; Euclidean error per point "
        "divided by sqrt(w*h) of the matched face_box; mean over visible points; "
        "mean over regions with landmarks_mask 1 and >= 1 visible point. Units: "
        "fraction of face size (x100 = paper %)."
      ),
      "landmarks/yaw_bins": (
        f"|yaw| of the true pose in degrees, bins {bins} (values beyond the last edge "
        "join the last bin); only regions with pose_mask 1. nme_yaw_mean = mean of "
        "the bin values."
      ),
      "landmarks/auc": (
        f"area under the CED on [0, {self.auc_limit:g}] divided by {self.auc_limit:g}; "
        f"failure_rate = fraction with NME > {self.auc_limit:g}."
      ),
      "visibility/accuracy": (
        f"per-point accuracy of regressed visibility >= {self.visibility_threshold:g} "
        "over regions with visibility_mask 1."
      ),
      "pose": "mean absolute wrapped angle error in degrees over regions with pose_mask 1.",
      "gender/accuracy": "argmax of the gender logits (1 female) over gender_mask 1.",
      "detection": (
        "AP (scikit-learn average_precision_score, non-interpolated) and "
        "accuracy of the face probability over detection_mask 1 regions; "
        "region-level, not the scene-level AFW/PASCAL protocol."
      ),
      "baseline": (
        "from training regions: mean shape (region-normalized), mean pose, "
        "majority gender, mean visibility thresholded, constant detection "
        "score (AP = positive rate), majority detection class."
      ),
    }

  def _bin_keys(self):
    edges = self.yaw_bins
    return [f"{a:g}_{b:g}" for a, b in itertools.pairwise(edges)]

  def result(self) -> dict[str, float]:
    """Flat float metrics (see class docstring and `protocol`), with baselines."""
    arr, base = self.arrays(), self._baselines
    out = {"count/examples": float(self._count_examples)}
    for task, key in (
      ("landmarks", "landmarks/errors"),
      ("visibility", "visibility/target"),
      ("pose", "pose/target"),
      ("gender", "gender/label"),
      ("detection", "detection/label"),
    ):
      out[f"count/{task}"] = float(arr[key].shape[0]) if key in arr else 0.0
    out.update(self._landmark_results(arr, "landmarks/errors", "landmarks"))
    if base is not None:
      out.update(self._landmark_results(arr, "landmarks/baseline_errors", "baseline/landmarks"))
    if out["count/visibility"]:
      out["visibility/accuracy"] = metrics.visibility_accuracy(
        arr["visibility/pred"], arr["visibility/target"], self.visibility_threshold
      )
      if base is not None:
        const = np.broadcast_to(base["mean_visibility"], arr["visibility/target"].shape)
        out["baseline/visibility/accuracy"] = metrics.visibility_accuracy(
          const, arr["visibility/target"], self.visibility_threshold
        )
    if out["count/pose"]:
      for prefix, pred in (
        ("pose", arr["pose/pred"]),
        (
          "baseline/pose",
          None if base is None else np.broadcast_to(base["mean_pose"], arr["pose/target"].shape),
        ),
      ):
        if pred is not None:
          for angle, value in metrics.pose_mae_deg(pred, arr["pose/target"]).items():
            out[f"{prefix}/mae_{angle}_deg"] = value
    if out["count/gender"]:
      labels = arr["gender/label"]
      out["gender/accuracy"] = metrics.accuracy(arr["gender/p_female"] > 0.5, labels)
      if base is not None:
        out["baseline/gender/accuracy"] = metrics.accuracy(
          np.full_like(labels, base["majority_gender"]), labels
        )
    if out["count/detection"]:
      labels, score = arr["detection/label"], arr["detection/score"]
      out["count/detection_positive"] = float(labels.sum())
      out["detection/accuracy"] = metrics.accuracy(score > 0.5, labels)
      # A constant score ties every region: AP = positive rate (needs no statistics).
      out["baseline/detection/ap"] = metrics.average_precision(np.zeros_like(score), labels)
      out["detection/ap"] = metrics.average_precision(score, labels)
      if base is not None and base["majority_detection"] is not None:
        out["baseline/detection/accuracy"] = metrics.accuracy(
          np.full_like(labels, base["majority_detection"]), labels
        )
    out.update(self._others.result())
    # JSON has no NaN: a metric that is undefined (e.g. AP without positives) is left out.
    return {k: float(v) for k, v in out.items() if np.isfinite(v)}

  def _landmark_results(self, arr, key, prefix) -> dict[str, float]:
    """NME overall and per |yaw| bin, CED AUC and failure rate for one error array."""
    if key not in arr:
      return {}
    errors, yaw = arr[key], arr["landmarks/abs_yaw_deg"]
    ok = np.isfinite(errors)
    if not ok.any():
      return {}
    out = {
      f"{prefix}/nme": float(errors[ok].mean()),
      f"{prefix}/auc_{self.auc_limit:g}": metrics.auc_at(errors, self.auc_limit),
      f"{prefix}/failure_rate_{self.auc_limit:g}": metrics.failure_rate(errors, self.auc_limit),
    }
    which = self.yaw_bin_index(yaw)
    bin_values = []
    for i, name in enumerate(self._bin_keys()):
      sel = ok & (which == i)
      if not prefix.startswith("baseline"):
        out[f"count/landmarks_yaw_{name}"] = float(sel.sum())
      if sel.any():
        out[f"{prefix}/nme_yaw_{name}"] = float(errors[sel].mean())
        bin_values.append(out[f"{prefix}/nme_yaw_{name}"])
    if len(bin_values) == len(self._bin_keys()):
      out[f"{prefix}/nme_yaw_mean"] = float(np.mean(bin_values))
    return out

  def yaw_bin_index(self, abs_yaw_deg) -> np.ndarray:
    """Bin index per row (-1 where yaw is unknown or below the first edge)."""
    abs_yaw_deg = np.asarray(abs_yaw_deg, np.float64)
    idx = np.searchsorted(self.yaw_bins, abs_yaw_deg, side="right") - 1
    idx = np.minimum(idx, len(self.yaw_bins) - 2)  # beyond the last edge: last bin
    return np.where(np.isfinite(abs_yaw_deg), idx, -1)
