"""The face-detection benchmarks of HyperFace: AFW, PASCAL faces and FDDB.

docs/papers.md section 1.12: AFW and PASCAL faces are scored by precision-recall and average
precision, FDDB by the discrete ROC; sections 1.14 and 6 give the published numbers that the
tables below repeat. All three run the whole test-time pipeline (docs/papers.md section 1.8,
inference/analyzer.py) on every image ("images" inputs, evaluation/image_runner.py).

AFW and PASCAL faces use `voc_detection_ap` with the rules of the ECCV'14 toolbox of Mathias
et al. (docs/papers.md section 1.12 [M]: the published AFW/PASCAL numbers were measured with
it; its code read in marcopede/face-eval, copy at
bairdzhang/smallhardface:external/marcopede-face-eval-*/plot_AP.py, VOCpr.py): faces below
30 px ignored, detections of at most 21 px dropped, 5 rounds of box calibration
(evaluation/protocols_detection.py). Our table row shows the calibrated AP beside the
uncalibrated one.
"""

from __future__ import annotations

import numpy as np

from hyperface_jax.evaluation import protocols_detection  # noqa: F401  (registers evaluators)
from hyperface_jax.evaluation.benchmarks import Benchmark, Column, PaperRow, PaperTable, register

# plot_AP.py defaults: --minw 30 --minh 30 -> minpix = int(sqrt(0.5 * 30 * 30)) = 21, --nit 5.
TOOLBOX_RULES = dict(
  iou_threshold=0.5, min_face_size=30.0, min_detection_size=21.0, calibration_iterations=5
)
_AP_COLUMNS = (
  Column("AP (%)", "detection/ap_calibrated"),
  Column("AP (%) without box calibration", "detection/ap"),
)
_CALIBRATION_NOTE = (
  "Our AP (%) column uses the toolbox's box calibration (the protocol of the published "
  "numbers, docs/papers.md section 1.12 [M]); the published rows have no uncalibrated value."
)
V_PWC = "docs/papers.md sections 1.14, 6 [V: PWC-HF]"
M_PAPER = "docs/papers.md sections 1.14, 6 [M]"

AFW = register(
  Benchmark(
    name="afw",
    dataset="afw",
    split="test",
    evaluator="voc_detection_ap",
    evaluator_kwargs=TOOLBOX_RULES,
    table=PaperTable(
      title="AFW face detection: average precision (docs/papers.md sections 1.12, 1.14)",
      columns=_AP_COLUMNS,
      rows=(
        PaperRow("HyperFace (AlexNet)", (97.9, None), M_PAPER),
        PaperRow("HyperFace-ResNet", (99.4, None), V_PWC),
      ),
      notes=(
        _CALIBRATION_NOTE,
        "Ground truth: the original boxes of AFW's anno.mat (data/builders/afw.py, "
        "docs/papers.md section 5.2); the published numbers use the re-annotated boxes of "
        "Mathias et al. (docs/papers.md sections 1.12, 5.2 [M]), which are not read here, so "
        "the comparison is approximate.",
      ),
    ),
  )
)

PASCAL_FACES = register(
  Benchmark(
    name="pascal_faces",
    dataset="pascal_faces",
    split="test",
    evaluator="voc_detection_ap",
    evaluator_kwargs=TOOLBOX_RULES,
    fields={"ignore": ((), np.bool_)},
    table=PaperTable(
      title="PASCAL faces detection: average precision (docs/papers.md sections 1.12, 1.14)",
      columns=_AP_COLUMNS,
      rows=(
        PaperRow("HyperFace (AlexNet)", (92.46, None), M_PAPER),
        PaperRow("HyperFace-ResNet", (96.2, None), V_PWC),
      ),
      notes=(
        _CALIBRATION_NOTE,
        "Ground truth: the toolbox's Annotations_Face_PASCALLayout_large_fixed.mat "
        "(data/builders/pascal_faces.py; 851 images, about 1,335-1,341 faces, docs/papers.md "
        "section 5.3); faces it flags are ignored.",
      ),
    ),
  )
)

FDDB_FOLDS = "+".join(f"fold{k:02d}" for k in range(1, 11))
FDDB = register(
  Benchmark(
    name="fddb",
    dataset="fddb",
    split=FDDB_FOLDS,
    evaluator="fddb_discrete_roc",
    evaluator_kwargs=dict(overlap_threshold=0.5, false_positive_points=(100, 500, 1000, 2000)),
    fields={"ellipse": ((5,), np.float32)},
    table=PaperTable(
      title="FDDB discrete ROC: true-positive rate (docs/papers.md sections 1.12, 1.14, 5.4)",
      columns=(
        Column("TPR (%) at 500 FP", "detection/fddb_tpr_at_500_fp"),
        Column("TPR (%) at 1000 FP", "detection/fddb_tpr_at_1000_fp"),
        Column("TPR (%) at 2000 FP", "detection/fddb_tpr_at_2000_fp"),
      ),
      rows=(
        PaperRow("HyperFace (AlexNet)", (None, "90.1*", None), V_PWC),
        PaperRow("HyperFace-ResNet", (None, None, None), "docs/papers.md section 1.14: [?]"),
      ),
      notes=(
        "*The number of false positives of the published 90.1 % is not stated (docs/papers.md "
        "section 1.14: PWC lists it as 'AP'); the ECCV'14 toolbox's FDDB legend quotes the "
        "true-positive rate at 1000 false positives (plot_AP_fddb.py), so it is placed there: "
        "compare approximately.",
        "All 10 folds are evaluated together (the model is not trained on FDDB); "
        "fddb_detections.txt holds our detections in the official format, folds and images "
        "in the order of the fold files, and fddb_DiscROC.txt the curve.",
      ),
    ),
  )
)
