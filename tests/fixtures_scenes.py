"""Writes tiny ExpW and social-relation distributions in their original / assumed formats."""

from __future__ import annotations

import os

from fixtures_celeba import write_corrupt, write_jpeg

SCENE_HW = (80, 120)
# ExpW label.lst rows: image face_id top left right bottom confidence expression.
# 3 faces over 2 images; row 3 duplicates row 1 exactly (the release has such rows).
EXPW_ROWS = (
  ("afraid_african_214.jpg", 0, 10, 20, 50, 52, 98.2, 2),
  ("angry_actor_104.jpg", 1, 30, 70, 100, 62, 45.0, 6),
  ("afraid_african_214.jpg", 0, 10, 20, 50, 52, 98.2, 2),
  ("angry_actor_104.jpg", 0, 5, 8, 40, 39, 80.5, 0),
)


def write_expw(root, rows=EXPW_ROWS, corrupt=()):
  """image/origin/*.jpg and label/label.lst (space-separated, confidence with decimals)."""
  names = sorted({r[0] for r in rows})
  for i, name in enumerate(names):
    path = os.path.join(root, "image", "origin", name)
    if name in corrupt:
      os.makedirs(os.path.dirname(path), exist_ok=True)
      write_corrupt(path)
    else:
      write_jpeg(path, SCENE_HW, 50 + i)
  os.makedirs(os.path.join(root, "label"), exist_ok=True)
  with open(os.path.join(root, "label", "label.lst"), "w") as f:
    for r in rows:
      f.write(" ".join(str(v) for v in r) + "\n")


# Social relation pair rows (assumed format): image, box1 x y w h, box2 x y w h, 8 traits.
SOCIAL_TRAIN = (
  ("family_001.jpg", (5, 6, 30, 30), (60, 8, 28, 28), (1, 0, 1, 1, 1, 1, 0, 1)),
  ("family_001.jpg", (60, 8, 28, 28), (90, 40, 20, 20), (0, 0, 1, 0, 1, 0, 0, 0)),
  ("office_17.jpg", (10, 10, 25, 25), (70, 12, 25, 25), (0, 1, 0, 0, 0, 0, 1, 1)),
)
SOCIAL_TEST = (("party_3.jpg", (2, 2, 40, 40), (50, 20, 30, 30), (1, 1, 1, 1, 1, 1, 1, 1)),)


def _social_line(row):
  name, b1, b2, traits = row
  return "  ".join(
    [name, " ".join(map(str, b1)), " ".join(map(str, b2)), " ".join(map(str, traits))]
  )


def write_social(root, train=SOCIAL_TRAIN, test=SOCIAL_TEST):
  """img/*.jpg and relation_trainset.txt / relation_testset.txt."""
  names = sorted({r[0] for r in train + test})
  for i, name in enumerate(names):
    write_jpeg(os.path.join(root, "img", name), SCENE_HW, 70 + i)
  for fname, rows in (("relation_trainset.txt", train), ("relation_testset.txt", test)):
    with open(os.path.join(root, fname), "w") as f:
      f.write("\n".join(_social_line(r) for r in rows) + "\n")
