"""Writes tiny CelebA / MAFL / LFWA distributions in their exact original text formats.

Images are real JPEGs (PIL); the lists have the count line, the header line, CelebA's
padding with MULTIPLE spaces and a trailing space after the attribute names, as in the
release. Every writer returns the values it wrote so tests can compare parsed values.
"""

from __future__ import annotations

import os

import numpy as np
from PIL import Image

from hyperface_jax.data.builders.celeba_lists import CELEBA_ATTRIBUTES

ALIGNED_HW = (48, 40)  # the real aligned images are 218 x 178; smaller keeps tests fast
WILD_HW = (110, 120)


def write_jpeg(path, hw, seed):
  """A real JPEG of size hw whose pixels depend on seed."""
  rng = np.random.default_rng(seed)
  img = rng.integers(0, 255, size=hw + (3,), dtype=np.uint8)
  os.makedirs(os.path.dirname(path), exist_ok=True)
  Image.fromarray(img).save(path, format="JPEG", quality=90)


def write_corrupt(path):
  """A file with a JPEG header and nothing after it (unreadable)."""
  with open(path, "wb") as f:
    f.write(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00")


def _write(path, lines, newline="\n"):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, "w", newline="") as f:
    f.write(newline.join(lines) + newline)


def celeba_values(n, seed=0):
  """Random but valid annotations of n images: names, attrs (+-1), landmarks, boxes, ..."""
  rng = np.random.default_rng(seed)
  names = [f"{i + 1:06d}.jpg" for i in range(n)]
  attrs = rng.choice([-1, 1], size=(n, 40))
  h, w = ALIGNED_HW
  base = np.array([[12, 18], [27, 18], [20, 26], [14, 34], [26, 34]])
  aligned = base + rng.integers(-3, 4, size=(n, 5, 2))
  wild = aligned * 2 + rng.integers(0, 20, size=(n, 1, 2))
  boxes = np.concatenate([wild.min(axis=1) - 5, np.full((n, 2), 50)], axis=1)
  partition = np.array([i % 3 for i in range(n)])
  identity = rng.integers(1, 10178, size=n)
  assert aligned.max() < min(h, w) and wild.max() < min(WILD_HW)
  return dict(
    names=names,
    attrs=attrs,
    aligned=aligned,
    wild=wild,
    boxes=boxes,
    partition=partition,
    identity=identity,
  )


def write_celeba(root, n=6, seed=0, layout="flat", corrupt=(), missing_image=()):
  """Writes images of both configs and the five lists; returns celeba_values(...).

  layout: "flat" (all in root, like torchvision) or "drive" (Img/, Anno/, Eval/).
  corrupt: names whose image files are written unreadable; missing_image: not written.
  """
  v = celeba_values(n, seed)
  sub = (
    {"img": "Img/", "anno": "Anno/", "eval": "Eval/"}
    if layout == "drive"
    else {"img": "", "anno": "", "eval": ""}
  )
  for i, name in enumerate(v["names"]):
    for folder, hw in (("img_align_celeba", ALIGNED_HW), ("img_celeba", WILD_HW)):
      path = os.path.join(root, sub["img"] + folder, name)
      if name in missing_image:
        continue
      if name in corrupt:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        write_corrupt(path)
      else:
        write_jpeg(path, hw, seed * 1000 + i)
  anno = os.path.join(root, sub["anno"])
  # list_attr_celeba.txt: count, names with a trailing space, values padded to width 2.
  rows = [
    f"{name} " + " ".join(f"{a:2d}" for a in attrs)
    for name, attrs in zip(v["names"], v["attrs"], strict=True)
  ]
  _write(
    anno + "list_attr_celeba.txt",
    [str(n), " ".join(CELEBA_ATTRIBUTES) + " "] + rows,
    newline="\r\n",
  )
  header = (
    "lefteye_x lefteye_y righteye_x righteye_y nose_x nose_y leftmouth_x "
    "leftmouth_y rightmouth_x rightmouth_y"
  )
  for fname, key in (
    ("list_landmarks_align_celeba.txt", "aligned"),
    ("list_landmarks_celeba.txt", "wild"),
  ):
    rows = [
      f"{name:<10}" + "".join(f"{c:>6d}" for c in pts.reshape(-1))
      for name, pts in zip(v["names"], v[key], strict=True)
    ]
    _write(anno + fname, [str(n), header] + rows)
  rows = [
    f"{name:<10}" + "".join(f"{c:>6d}" for c in box)
    for name, box in zip(v["names"], v["boxes"], strict=True)
  ]
  _write(anno + "list_bbox_celeba.txt", [str(n), "image_id x_1 y_1 width height"] + rows)
  _write(
    anno + "identity_CelebA.txt",
    [f"{name} {i}" for name, i in zip(v["names"], v["identity"], strict=True)],
  )
  _write(
    os.path.join(root, sub["eval"] + "list_eval_partition.txt"),
    [f"{name} {p}" for name, p in zip(v["names"], v["partition"], strict=True)],
  )
  return v


def replace_line(path, line_number, new_text):
  """Replaces 1-based line `line_number` of a text file (keeps its newline style)."""
  with open(path, newline="") as f:
    lines = f.read().splitlines(keepends=True)
  ending = lines[line_number - 1][len(lines[line_number - 1].rstrip("\r\n")) :]
  lines[line_number - 1] = new_text + ending
  with open(path, "w", newline="") as f:
    f.write("".join(lines))


def write_mafl_lists(root, train_names, test_names):
  """MAFL/training.txt and MAFL/testing.txt: one CelebA file name per line."""
  _write(os.path.join(root, "MAFL", "training.txt"), list(train_names))
  _write(os.path.join(root, "MAFL", "testing.txt"), list(test_names))


def write_lfwa(
  root, people=(("Aaron_Eckhart", 1), ("Zoe_Ball", 2)), seed=3, partition=True, folder_in_name=False
):
  """LFWA in the assumed layout (hyperface_jax/data/builders/lfwa.py): lfw/<Person>/ JPEGs
  (250 x 250 in LFW, smaller here), list_attr_lfwa.txt in CelebA format, optional partition.

  Returns {name: attrs (+-1, [40])} and the partition codes by name.
  """
  rng = np.random.default_rng(seed)
  names = [f"{p}_{k + 1:04d}.jpg" for p, count in people for k in range(count)]
  attrs = {n: rng.choice([-1, 1], size=40) for n in names}
  codes = {n: (0 if i % 2 == 0 else 2) for i, n in enumerate(names)}
  for i, n in enumerate(names):
    write_jpeg(os.path.join(root, "lfw", n.rsplit("_", 1)[0], n), (50, 50), seed * 100 + i)
  listed = {n: (f"{n.rsplit('_', 1)[0]}/{n}" if folder_in_name else n) for n in names}
  rows = [f"{listed[n]:<30}" + " ".join(f"{a:2d}" for a in attrs[n]) for n in names]
  _write(
    os.path.join(root, "list_attr_lfwa.txt"), [str(len(names)), " ".join(CELEBA_ATTRIBUTES)] + rows
  )
  if partition:
    _write(
      os.path.join(root, "list_eval_partition_lfwa.txt"), [f"{listed[n]} {codes[n]}" for n in names]
    )
  return {listed[n]: attrs[n] for n in names}, {listed[n]: codes[n] for n in names}
