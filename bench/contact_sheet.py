"""Writes docs/synth_faces_contact_sheet.png: synthetic faces across the pose range.

  python bench/contact_sheet.py [--out docs/synth_faces_contact_sheet.png]

Rows: pitch -30, 0, +30 deg (and a row of random scenes); columns: yaw -90..90 deg. Visible
landmarks green dots, invisible (self-occluded / occluded / outside) red crosses, box in
yellow.
"""

import argparse

import cv2
import numpy as np

from hyperface_jax.data import render

ZOOM = 3


def _annotate(img, lms, viss, boxes):
  out = cv2.resize(img, None, fx=ZOOM, fy=ZOOM, interpolation=cv2.INTER_LINEAR)
  for lm, vis, box in zip(lms, viss, boxes, strict=True):
    x, y, w, h = (np.asarray(box) * ZOOM).astype(int)
    cv2.rectangle(out, (x, y), (x + w, y + h), (255, 220, 0), 1, cv2.LINE_AA)
    for (px, py), v in zip(np.asarray(lm) * ZOOM, vis, strict=True):
      c = (int(round(px)), int(round(py)))
      if v > 0:
        cv2.circle(out, c, 3, (0, 255, 0), -1, cv2.LINE_AA)
      else:
        cv2.drawMarker(out, c, (255, 0, 0), cv2.MARKER_TILTED_CROSS, 7, 1, cv2.LINE_AA)
  return out


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--out", default="docs/synth_faces_contact_sheet.png")
  args = parser.parse_args()
  cfg = render.CropConfig(image_size=96, box_frac=(0.6, 0.6), jitter=0.0, occluder_prob=0.0)
  rows = []
  for r, pitch in enumerate((-30, 0, 30)):
    tiles = []
    for c, yaw in enumerate(np.linspace(-90, 90, 7)):
      ex = render.render_face_crop(
        np.random.default_rng([11, r, c]), cfg, pose=np.deg2rad([0.0, pitch, yaw])
      )
      tiles.append(_annotate(ex["image"], [ex["landmarks"]], [ex["visibility"]], [ex["box"]]))
    rows.append(np.concatenate(tiles, 1))
  tiles = []
  for i in range(7):
    ex = render.render_scene(np.random.default_rng([12, i]), render.SceneConfig(image_size=96))
    f = ex["faces"]
    tiles.append(_annotate(ex["image"], f["landmarks"], f["visibility"], f["box"]))
  rows.append(np.concatenate(tiles, 1))
  sheet = np.concatenate(rows, 0)
  cv2.imwrite(args.out, sheet[..., ::-1])
  print(f"wrote {args.out} {sheet.shape}")


if __name__ == "__main__":
  main()
