"""Parsers of the CelebA annotation lists (docs/papers.md section 5.7), shared by celeba/mafl/lfwa.

Formats (whitespace-separated; CelebA pads values with MULTIPLE spaces, so rows are split
on runs of whitespace, never on single spaces):
  list_attr_celeba.txt           line 1 image count, line 2 the 40 attribute names,
                                 then `000001.jpg -1  1  1 -1 ...` (values -1 / 1)
  list_landmarks[_align]_celeba.txt  count, header `lefteye_x lefteye_y ... rightmouth_y`,
                                 then `000001.jpg 69  109 ...` (10 integers, pixels, 0-based)
  list_bbox_celeba.txt           count, header `image_id x_1 y_1 width height`, rows
  list_eval_partition.txt        no header: `000001.jpg 0` (0 train, 1 val, 2 test)
  identity_CelebA.txt            no header: `000001.jpg 2880`

Tables are held as numpy matrices plus a name -> row index (about 30 MB for the full
202,599 rows); images are never held (the builders stream them).
"""

from __future__ import annotations

import dataclasses
from typing import Dict, Optional, Sequence

import numpy as np

from hyperface_jax.data.builders import face_crops, manual

# docs/papers.md section 5.7 (standard order of the header line of list_attr_celeba.txt).
CELEBA_ATTRIBUTES = (
  "5_o_Clock_Shadow",
  "Arched_Eyebrows",
  "Attractive",
  "Bags_Under_Eyes",
  "Bald",
  "Bangs",
  "Big_Lips",
  "Big_Nose",
  "Black_Hair",
  "Blond_Hair",
  "Blurry",
  "Brown_Hair",
  "Bushy_Eyebrows",
  "Chubby",
  "Double_Chin",
  "Eyeglasses",
  "Goatee",
  "Gray_Hair",
  "Heavy_Makeup",
  "High_Cheekbones",
  "Male",
  "Mouth_Slightly_Open",
  "Mustache",
  "Narrow_Eyes",
  "No_Beard",
  "Oval_Face",
  "Pale_Skin",
  "Pointy_Nose",
  "Receding_Hairline",
  "Rosy_Cheeks",
  "Sideburns",
  "Smiling",
  "Straight_Hair",
  "Wavy_Hair",
  "Wearing_Earrings",
  "Wearing_Hat",
  "Wearing_Lipstick",
  "Wearing_Necklace",
  "Wearing_Necktie",
  "Young",
)
ATTRIBUTE_INDEX = {name: i for i, name in enumerate(CELEBA_ATTRIBUTES)}
LANDMARK_HEADER = (
  "lefteye_x",
  "lefteye_y",
  "righteye_x",
  "righteye_y",
  "nose_x",
  "nose_y",
  "leftmouth_x",
  "leftmouth_y",
  "rightmouth_x",
  "rightmouth_y",
)
BBOX_HEADER = ("image_id", "x_1", "y_1", "width", "height")
PARTITION_SPLITS = {0: "train", 1: "validation", 2: "test"}


@dataclasses.dataclass
class Table:
  """Rows of one list file: values[index[name]] with its 1-based line number."""

  path: str
  index: Dict[str, int]
  values: np.ndarray
  lines: np.ndarray
  header_line: Optional[int] = None  # 1-based line of the header, when the file has one

  def row(self, name: str, *, needed_by: str = ""):
    """(values, line) of `name`; AnnotationError naming this file when it has no row."""
    i = self.index.get(name)
    if i is None:
      raise manual.AnnotationError(
        self.path, None, f"no row for image {name!r}" + (f" ({needed_by})" if needed_by else "")
      )
    return self.values[i], int(self.lines[i])

  def __len__(self):
    return len(self.index)


def _parse_rows(path, rows, ncols: int, what: str, kind) -> Table:
  """rows: (line, stripped text). Checks column counts, numbers and duplicate names."""
  index, values, lines = {}, [], []
  for line, text in rows:
    tokens = text.split()  # runs of spaces (CelebA pads with several)
    face_crops.columns(path, line, tokens, ncols + 1, f"image name + {what}")
    name = tokens[0].replace("\\", "/")
    if name in index:
      raise manual.AnnotationError(
        path, line, f"duplicate row for image {name!r} (first at line {lines[index[name]]})"
      )
    try:
      vals = np.asarray(tokens[1:], dtype=np.float64 if kind is float else np.int64)
    except ValueError:
      vals = face_crops.numbers(tokens[1:], path, line, what, kind)
    if kind is float and not np.all(np.isfinite(vals)):
      face_crops.numbers(tokens[1:], path, line, what, kind)  # raises naming the token
    index[name] = len(values)
    values.append(vals)
    lines.append(line)
  dtype = np.float64 if kind is float else np.int64
  arr = np.asarray(values, dtype).reshape(len(values), ncols)
  return Table(str(path), index, arr, np.asarray(lines, np.int32))


def read_counted(path, header: Optional[Sequence[str]], ncols: int, what: str, kind=float) -> tuple:
  """A CelebA list with a count line and a header line: (header tokens, Table).

  Args:
    path: the list file.
    header: expected header tokens (None: return them unchecked).
    ncols: value columns after the image name.
    what: description of the values for error messages.
    kind: float or int.
  """
  lines = manual.read_lines(path)
  if len(lines) < 2:
    raise manual.AnnotationError(path, None, "expected a count line and a header line")
  (count_line, count_text), (header_line, header_text) = lines[0], lines[1]
  try:
    count = int(count_text)
  except ValueError:
    raise manual.AnnotationError(
      path, count_line, f"expected the number of images, found {count_text!r}"
    ) from None
  tokens = tuple(header_text.split())
  if header is not None and tuple(t.lower() for t in tokens) != tuple(h.lower() for h in header):
    raise manual.AnnotationError(
      path, header_line, f"expected the header {' '.join(header)!r}, found {header_text!r}"
    )
  table = _parse_rows(path, lines[2:], ncols, what, kind)
  table.header_line = header_line
  if len(table) != count:
    raise manual.AnnotationError(
      path, count_line, f"line 1 announces {count} images but {len(table)} rows follow"
    )
  return tokens, table


def read_plain(path, ncols: int, what: str, kind=int) -> Table:
  """A list without count/header lines (list_eval_partition.txt, identity_CelebA.txt)."""
  return _parse_rows(path, manual.read_lines(path), ncols, what, kind)


def read_attributes(path) -> Table:
  """list_attr_celeba.txt -> Table of int64 [N, 40] in 0/1, columns in CELEBA_ATTRIBUTES
  order (taken by NAME from the header line, so a reordered file still maps correctly)."""
  names, table = read_counted(path, None, face_crops.NUM_ATTRIBUTES, "40 attributes", int)
  header_line = table.header_line
  unknown = [n for n in names if n not in ATTRIBUTE_INDEX]
  if len(names) != face_crops.NUM_ATTRIBUTES or unknown or len(set(names)) != len(names):
    raise manual.AnnotationError(
      path,
      header_line,
      f"expected the 40 CelebA attribute names, found {len(names)} names (unknown: {unknown[:5]})",
    )
  bad = ~np.isin(table.values, (-1, 1))
  if bad.any():
    r, c = np.argwhere(bad)[0]
    raise manual.AnnotationError(
      path,
      int(table.lines[r]),
      f"attribute {names[c]} has value {table.values[r, c]}; expected -1 or 1",
    )
  order = np.array([names.index(a) for a in CELEBA_ATTRIBUTES])
  table.values = (table.values[:, order] > 0).astype(np.int64)
  return table


def read_landmarks(path) -> Table:
  """list_landmarks[_align]_celeba.txt -> Table of float64 [N, 10] (x, y pairs)."""
  return read_counted(path, LANDMARK_HEADER, 10, "5 landmark x, y pairs")[1]


def read_bboxes(path) -> Table:
  """list_bbox_celeba.txt -> Table of float64 [N, 4] x, y, w, h (w, h > 0 checked)."""
  table = read_counted(path, BBOX_HEADER, 4, "box x_1 y_1 width height")[1]
  bad = (table.values[:, 2] <= 0) | (table.values[:, 3] <= 0)
  if bad.any():
    r = int(np.flatnonzero(bad)[0])
    raise manual.AnnotationError(
      path,
      int(table.lines[r]),
      f"box of non-positive size {table.values[r].tolist()} (x_1 y_1 width height)",
    )
  return table


def read_partition(path) -> Table:
  """list_eval_partition.txt -> Table of int64 [N, 1] in {0, 1, 2}."""
  table = read_plain(path, 1, "partition 0|1|2")
  bad = ~np.isin(table.values[:, 0], list(PARTITION_SPLITS))
  if bad.any():
    r = int(np.flatnonzero(bad)[0])
    raise manual.AnnotationError(
      path,
      int(table.lines[r]),
      f"unknown partition code {table.values[r, 0]}; expected 0 (train), 1 (val), 2 (test)",
    )
  return table


def names_by_split(partition: Table) -> Dict[str, list]:
  """{split: [names in file order]} from a partition table (empty splits left out)."""
  out: Dict[str, list] = {}
  for name, i in partition.index.items():
    out.setdefault(PARTITION_SPLITS[int(partition.values[i, 0])], []).append(name)
  return out
