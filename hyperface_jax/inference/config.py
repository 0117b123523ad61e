"""Settings of the test-time pipeline (docs/papers.md section 1.8), with documented defaults.

`inference_config()` returns an unlocked-then-locked `ml_collections.ConfigDict`; the
analyzer takes overrides as flat dotted keys (`{"lnms.top_k": 3}`) or nested dicts, and a
mistyped key fails naming it. Every value the paper leaves open (docs/papers.md section 7, item
2) is marked "documented default" with the reason.
"""

from __future__ import annotations

import ast
from typing import Any, Mapping, Sequence

import ml_collections

from hyperface_jax.data import boxes as box_lib
from hyperface_jax.inference import lnms


def inference_config() -> ml_collections.ConfigDict:
  """The pipeline defaults: proposals -> network -> IRP -> L-NMS (docs/papers.md 1.8) -> box
  refinement (ours, inference/box_refine.py)."""
  c = ml_collections.ConfigDict()
  c.proposals = ml_collections.ConfigDict()
  # docs/papers.md 1.8 step 1: the paper uses selective search. Default "auto" (resolved by
  # the analyzer, analyzer.resolve_proposals): "learned" -- Fast-HyperFace's fully
  # convolutional proposal net (docs/papers.md 1.11), which `make demo` trains into
  # runs/demo/proposals -- when a proposal net is found, else "sliding_window" (the
  # window pyramid: no second model, but the network runs on every window: ~3000 on a
  # 640x480 image). Same AP on synth_faces; the learned stage is what makes a 640x480
  # image take ~0.1 s instead of seconds (docs/inference.md latency).
  c.proposals.name = "auto"
  # min_side, max_side_fraction, scale_step, stride_fraction, border_fraction: documented
  # defaults shared with the training-time window negatives (data/boxes.py DEFAULT_WINDOWS,
  # where the measurements behind them are noted).
  c.proposals.sliding_window = ml_collections.ConfigDict(dict(box_lib.DEFAULT_WINDOWS))
  c.proposals.selective_search = ml_collections.ConfigDict(
    dict(
      mode="fast",  # "fast" | "quality" (OpenCV ximgproc strategies)
      max_image_side=500,  # docs/papers.md 1.4: TK downscales to <= 500 px before proposals
      max_proposals=2000,  # cap, in OpenCV's ranking order
      min_side=16.0,  # proposals smaller than this (px, original image) are dropped
      square=True,
    )
  )  # squared about their centre: AFLW face boxes are square (1.9)
  c.proposals.haar = ml_collections.ConfigDict(
    dict(
      cascade="haarcascade_frontalface_default.xml",
      scale_factor=1.1,
      min_neighbors=3,
      min_side=20,
      enlarge=1.3,
    )
  )  # OpenCV boxes are tighter than AFLW boxes
  c.proposals.learned = ml_collections.ConfigDict(
    dict(
      workdir="",
      step=-1,  # a configs/fast_hyperface.py workdir; -1 = latest checkpoint
      # Documented defaults (docs/papers.md 1.11 gives none), chosen for latency
      # (docs/inference.md latency, with the AP each costs): few proposals (the network
      # and IRP cost ~1.5-2 ms of CPU per proposal on the demo model), NMS 0.7 (0.5
      # spread them over more faces but fit them less tightly: validation AP 0.827 vs
      # 0.838), and a coarse pyramid (x1.4 per level; x1.25 scored 0.855 on validation
      # but 0.823 vs 0.850 on 50 test scenes -- within the noise of ~100 faces -- at ~1.4x
      # the proposal time) whose smallest face is 32 px or 1/10 of the image's shorter
      # side, the larger (0 = 32 px on any image: 3.5x the proposal time on 640x480).
      score_threshold=0.05,
      max_proposals=50,
      nms_iou=0.7,
      min_side=32.0,
      scale_step=1.4,
      min_side_fraction=0.1,
      border=8,
      bucket=32,
      # A net trained with the box-regression head (configs/fast_hyperface.py) moves each
      # window onto the face box it predicts before NMS (fast_proposals.score_windows);
      # False scores the plain windows (a net without the head always does).
      regress_boxes=True,
    )
  )
  # Hard cap on proposals per image, highest-ranked first (keeps the network batch bounded).
  c.max_proposals = 3000
  # Network batches (docs/papers.md 1.8 step 2): every crop of every image goes through
  # batches of `batch_size`; the rest is padded to the smallest bucket that holds it
  # (min_bucket rounded up to a power of two m, then 2m, 3m, 4m, then doubling, and
  # batch_size itself; inference/batched.py bucket_sizes), each bucket one compiled
  # program. Documented defaults 24 and 4 (buckets 4, 8, 12, 16, 24): on the 2-core CPU the
  # demo model's forward takes 7.5 / 13.3 / 17.8 / 21.1 / 27.0 / 38.2 ms for batches of
  # 4 / 8 / 12 / 16 / 24 / 32 (bench/forward_batch_speed.py; 1.12 ms a crop at 24, the
  # least), so 50 proposals run as 24 + 24 + 4 (62 ms against 65 as 32 + 24) and the box
  # refinement's 10 windows of two faces as 12, not 16. Accelerators want larger batches.
  c.batch_size = 24
  c.min_bucket = 4
  # Average every crop's outputs with those of its mirror image (inference/batched.py;
  # the papers use single crops); twice the network time.
  c.flip_test = False
  c.irp = ml_collections.ConfigDict(
    dict(
      enabled=True,
      iterations=1,  # docs/papers.md 1.8 [?]; TK runs up to 3 stages
      score_threshold=0.25,  # candidates entering IRP (TK keeps det > 0.25 between stages)
      tie_tolerance=1e-3,  # new box wins at score >= old - this (irp.py: saturated scores)
      # Per image, IRP only the best this many candidates (0 = all; irp.py); the others
      # keep their proposal box. Documented default 16 (one network bucket), chosen on
      # 300 synth_faces VALIDATION scenes with box refinement among 8 / 12 / 16 / 24 / all:
      # AP 0.942 / 0.947 / 0.951 / 0.949 / 0.950 (docs/inference.md "Box refinement").
      max_candidates=16,
      # Documented default "both" (irp.py): the candidate AND its landmark-fitted box go on
      # to L-NMS, instead of the paper's "better" of the two (docs/papers.md 1.8 step 3).
      # With 50 learned proposals a face has few windows, and L-NMS's box vote gains from
      # twice the boxes: 300 synth_faces VALIDATION scenes, AP 0.918 -> 0.935 at the same
      # latency (docs/inference.md "IRP keeps both boxes").
      keep="both",
    )
  )
  # The paper's L-NMS (inference/lnms.py PAPER_LNMS, which also holds top_k, the final
  # score_threshold and the visibility_threshold of the L-NMS boxes) with four documented
  # defaults of ours below.
  c.nms = ml_collections.ConfigDict(
    {
      **lnms.PAPER_LNMS,
      "method": "lnms",  # "lnms" (docs/papers.md 1.8 step 4) | "plain" (box NMS) | "none"
      # Grouping IoU: docs/papers.md 1.8 suggests 0.5 [?] (TK 0.2 on its sqrt overlap, STY
      # 0.2); 0.3 measured best on synth_faces validation scenes (docs/inference.md).
      "iou_threshold": 0.3,
      # The three L-NMS choices below are documented defaults picked on 100 synth_faces
      # VALIDATION scenes (docs/inference.md), instead of the paper's (PAPER_LNMS).
      # Grouping on the detections' own (IRP) boxes and voting their boxes found more
      # faces (recall 0.93 vs 0.88: the box of the median landmarks misses more faces at
      # IoU 0.5) with fewer false positives, while the medians of the top-K still give
      # the better landmarks, pose and gender of docs/papers.md 1.8 step 4.4; the top-K mean
      # score ranks faces seen by many windows above lone confident windows.
      "group_by": "boxes",  # grouping IoU on "boxes" | "landmark_boxes" | "either"
      "output_box": "vote",  # "vote" | "leader" | "median_landmarks" (FaceRectCalculator)
      # Group score: "top_k_mean" | "max" (inference/lnms.py) | "auto" = "max" for the
      # proposal generators that give one box per face (proposals.ONE_BOX_PER_FACE: haar),
      # where a top-K mean would cap a sure face at 1/K, else "top_k_mean".
      "score_mode": "auto",
    }
  )
  # Box refinement (inference/box_refine.py; not in the paper, a documented default): each
  # returned face's box is scaled about its centre by scale_step**k, k = -(windows // 2) ..
  # windows // 2, the network scores those windows, and the box becomes their mean
  # weighted by softmax(face-score log-odds / temperature). The softmax score rounds to 1.0
  # on windows covering only part of a face; its log-odds keep growing with the IoU.
  # Chosen on 300 synth_faces VALIDATION scenes by bench/box_refine_study.py (the highest
  # AP at the default threshold among steps 1.08 / 1.15 / 1.25, 3 or 5 windows and
  # temperatures 1 / 2 / 4: 0.942 -> 0.950; docs/inference.md "Box refinement").
  c.box_refine = ml_collections.ConfigDict(
    dict(enabled=True, scale_step=1.15, windows=5, temperature=4.0)
  )
  c.max_faces = 32  # rows of the padded output (faces beyond are dropped, best kept)
  # Faces whose final (group) score is below this are not returned. Documented default,
  # calibrated on synth_faces VALIDATION scenes (bench/full_image_eval.py --thresholds,
  # docs/inference.md): the highest of 0.1, 0.2, ... that costs at most 0.01 AP against
  # no threshold. First 0.3 (100 scenes, an early model: AP 0.827 -> 0.821, false positives
  # per image 2.96 -> 1.06); with IRP keeping both boxes the group scores rose, and on 300
  # scenes of the default pipeline 0.5 costs 0.005 AP (0.938 -> 0.933; 1.57 -> 0.60 FP per
  # image) and 0.6 0.0101; the sliding window loses 0.0045 at 0.5.
  c.detection_threshold = 0.5
  return c


def with_overrides(
  config: ml_collections.ConfigDict, overrides: Mapping[str, Any] | None
) -> ml_collections.ConfigDict:
  """A copy of `config` with overrides applied; unknown keys raise naming the key.

  Args:
    config: the base config.
    overrides: flat dotted keys ("nms.top_k") or nested dicts ({"nms": {"top_k": 3}}).

  Returns:
    A new locked ConfigDict.
  """
  out = ml_collections.ConfigDict(config.to_dict())
  out.lock()
  for key, value in _flatten(dict(overrides or {})).items():
    node, parts = out, key.split(".")
    for part in parts[:-1]:
      if part not in node or not isinstance(node[part], ml_collections.ConfigDict):
        raise KeyError(
          f"Unknown inference setting {key!r}: no section {part!r}; known "
          f"top-level keys: {sorted(out.keys())}."
        )
      node = node[part]
    if parts[-1] not in node:
      raise KeyError(f"Unknown inference setting {key!r}; known keys here: {sorted(node.keys())}.")
    node[parts[-1]] = value
  return out


def parse_value(text: str) -> Any:
  """A setting's value from text: a Python literal (3, 0.5, (1, 2), "a"), true/false
  (any case), else the text itself (so `proposals.name=haar` needs no quotes)."""
  if text.lower() in ("true", "false"):
    return text.lower() == "true"
  try:
    return ast.literal_eval(text)
  except (ValueError, SyntaxError):
    return text


def parse_overrides(items: Sequence[str]) -> dict:
  """["nms.top_k=3", "flip_test=true"] -> {"nms.top_k": 3, "flip_test": True}.

  Raises:
    ValueError naming the item when it has no "=" or an empty key.
  """
  out = {}
  for item in items:
    key, sep, value = item.partition("=")
    if not sep or not key.strip():
      raise ValueError(f"Expected KEY=VALUE (e.g. nms.top_k=3), got {item!r}.")
    out[key.strip()] = parse_value(value)
  return out


def _flatten(tree: Mapping[str, Any], prefix: str = "") -> dict:
  flat = {}
  for k, v in tree.items():
    if isinstance(v, (Mapping, ml_collections.ConfigDict)):
      flat.update(_flatten(dict(v), f"{prefix}{k}."))
    else:
      flat[f"{prefix}{k}"] = v
  return flat
