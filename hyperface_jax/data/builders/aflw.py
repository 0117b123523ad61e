"""TFDS builder `aflw`: AFLW whole images with every annotated face (face-scene schema).

manual_dir holds the AFLW distribution (docs/papers.md section 5.1), either directly or under
`aflw/data/` as the archives extract:

  aflw.sqlite                 # aflw-db.tar.gz: aflw/data/aflw.sqlite
  flickr/0/image00002.jpg     # aflw-images-{0,2,3}.tar.gz: aflw/data/flickr/{0,2,3}/
  flickr/2/...  flickr/3/...

One example per image (docs/design.md section 5) with all its faces, joined from Faces,
FaceImages (file_id), FaceRect, FacePose, FaceMetaData and FeatureCoords (face_id); the
rows are streamed from one ordered SQLite query and images are decoded one at a time, so
memory does not grow with the dataset (bench/builder_memory.py).

Labels, as stored (docs/papers.md section 5.1):
  box        FaceRect x, y, w, h (FaceRectCalculator squares; may extend past the image);
  landmarks  FeatureCoords x, y at index feature_id - 1 (AFLW-21, data/schemes.py);
  visibility 1 where a FeatureCoords row exists, 0 where none (AFLW annotates visible
             points only), so visibility is valid for every face;
  pose       FacePose roll, pitch, yaw in radians;
  gender     FaceMetaData sex 'm' -> 0, 'f' -> 1 (docs/design.md section 6).
A face without a FaceRect/FacePose/FaceMetaData row or without any landmark keeps the label
masked (valid False), never dropped (LEFT JOINs). Contradictory duplicate rows, feature_id
outside 1..21, a non-positive box size or a sex code other than m/f raise AnnotationError
naming "<sqlite>:<table>:<rowid>".

Splits: "test" = images holding the fixed HyperFace test faces (aflw_split.py), "train" =
the other images. Published size: 21,997 images / 25,993 faces in total (docs/papers.md 5.1).

Builder config (`AflwConfig`): `test_faces`, the number of faces the test rule takes
(default 1000, the paper's; config "default" uses the repository list when it has ids).
Another value applies aflw_split's rule with that many faces to the user's database
(config name "test<N>"), e.g. for a subset of AFLW that has too few faces for 1000 test
faces and a train split:
  python -m hyperface_jax.data.prepare aflw --test_faces=100 --data_dir=D --manual_dir=M
and, to train on it, `config.data.builder_config = {"test_faces": 100}`. A database whose
faces cannot fill both splits by the rule (or that holds none of the listed test faces)
raises `SplitTooSmall` saying how many faces and images it has and what the rule needs.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from typing import Dict, Iterator, List, Optional, Set, Tuple

import numpy as np
import tensorflow_datasets as tfds

from hyperface_jax.data import schemes
from hyperface_jax.data.builders import aflw_split, face_crops, manual

URL = "https://www.tugraz.at/institute/icg/research/team-bischof/lrs/downloads/aflw/"
_VERSION = tfds.core.Version("1.0.0")
_SEX = {"m": 0, "f": 1}  # docs/design.md section 6
# Tables and the columns this builder reads (docs/papers.md section 5.1).
REQUIRED_COLUMNS = {
  "FaceImages": ("file_id", "filepath"),
  "Faces": ("face_id", "file_id"),
  "FaceRect": ("face_id", "x", "y", "w", "h"),
  "FacePose": ("face_id", "roll", "pitch", "yaw"),
  "FaceMetaData": ("face_id", "sex"),
  "FeatureCoords": ("face_id", "feature_id", "x", "y"),
}
_QUERY = """
SELECT fi.filepath, f.face_id,
       r.rowid, r.x, r.y, r.w, r.h,
       p.rowid, p.roll, p.pitch, p.yaw,
       m.rowid, m.sex,
       c.rowid, c.feature_id, c.x, c.y
FROM Faces f JOIN FaceImages fi ON fi.file_id = f.file_id
LEFT JOIN FaceRect r ON r.face_id = f.face_id
LEFT JOIN FacePose p ON p.face_id = f.face_id
LEFT JOIN FaceMetaData m ON m.face_id = f.face_id
LEFT JOIN FeatureCoords c ON c.face_id = f.face_id
ORDER BY fi.filepath, f.face_id, c.feature_id, c.rowid
"""


class SplitTooSmall(ValueError):
  """The database has too few faces for the test-split rule (or none of the listed ones)."""


@dataclasses.dataclass
class AflwConfig(tfds.core.BuilderConfig):
  """How many faces the HyperFace test split takes (aflw_split.py rule)."""

  test_faces: int = aflw_split.DEFAULT_NUM_FACES

  @classmethod
  def make(cls, test_faces=aflw_split.DEFAULT_NUM_FACES):
    """Config "default" (1000 faces, the paper's) or "test<N>" for another test size."""
    if int(test_faces) < 1:
      raise ValueError(f"test_faces must be >= 1, got {test_faces}")
    test_faces = int(test_faces)
    name = "default" if test_faces == aflw_split.DEFAULT_NUM_FACES else f"test{test_faces}"
    return cls(name=name, version=_VERSION, test_faces=test_faces)


def check_split_sizes(images, test_ids, test_faces: int, source: str, sqlite_path: str) -> None:
  """Raises SplitTooSmall unless both splits get at least one image.

  Args:
    images: filepath -> face_ids (aflw_split.image_face_ids).
    test_ids: the chosen test face ids.
    test_faces: the configured test size (AflwConfig.test_faces).
    source: "list" (the repository's aflw_test_faces.txt) or "rule".
    sqlite_path: named in the message.
  """
  num_faces = sum(len(ids) for ids in images.values())
  num_test = sum(1 for ids in images.values() if any(f in test_ids for f in ids))
  num_train = len(images) - num_test
  if num_test and num_train:
    return
  have = f"{sqlite_path} has {num_faces} faces in {len(images)} images"
  smaller = max(1, num_faces // 10)
  todo = (
    f"For a subset of AFLW, build a smaller test split with the rule, e.g. "
    f"`python -m hyperface_jax.data.prepare aflw --test_faces={smaller} ...` (builder "
    f"config AflwConfig.make(test_faces={smaller}); train on it with "
    f"config.data.builder_config = {{'test_faces': {smaller}}})."
  )
  if not images:
    raise SplitTooSmall(
      f"aflw: {sqlite_path} has no faces (the Faces JOIN FaceImages on file_id is empty); "
      "nothing to build."
    )
  if source == "list":
    what = (
      "none of the test faces listed in aflw_test_faces.txt is in it (another AFLW "
      "release or a subset?), so the test split would be empty"
      if not num_test
      else "every one of its images holds a listed test face, so the train split would be empty"
    )
    raise SplitTooSmall(f"aflw: {have}; {what}. {todo}")
  raise SplitTooSmall(
    f"aflw: {have}, but the test-split rule (aflw_split.py) takes whole images until it has "
    f">= {test_faces} test faces, which leaves {num_train} images for the train split: the "
    f"rule needs more than {test_faces} faces (the full AFLW has 25,993). {todo}"
  )


def find_root(manual_dir) -> str:
  """The folder holding aflw.sqlite and flickr/ (manual_dir itself or manual_dir/aflw/data)."""
  for sub in ("", os.path.join("aflw", "data")):
    if manual_dir is not None and os.path.exists(
      os.path.join(os.fspath(manual_dir), sub, "aflw.sqlite")
    ):
      return os.path.join(os.fspath(manual_dir), sub)
  manual.require(
    manual_dir,
    "aflw.sqlite",
    dataset="aflw",
    url=URL,
    hint="aflw-db.tar.gz holds it as aflw/data/aflw.sqlite; either place works",
  )
  raise AssertionError("unreachable")


def check_schema(conn, sqlite_path) -> None:
  """Raises AnnotationError naming the first missing table or column."""
  for table, columns in REQUIRED_COLUMNS.items():
    have = {row[1].lower() for row in conn.execute(f"PRAGMA table_info({table})")}
    if not have:
      raise manual.AnnotationError(
        sqlite_path,
        None,
        f"table {table} is missing (expected the AFLW schema, docs/papers.md section 5.1)",
      )
    for col in columns:
      if col.lower() not in have:
        raise manual.AnnotationError(
          f"{sqlite_path}:{table}", None, f"column {col!r} is missing; columns: {sorted(have)}"
        )


def _normalized(name) -> str:
  return "".join(ch for ch in str(name).lower() if ch.isalnum())


def feature_name_mismatches(conn) -> List[str]:
  """FeatureCoordTypes rows whose `descr` differs from schemes.AFLW21_NAMES[feature_id - 1]
  (case, spaces and punctuation ignored); [] when the table is absent or agrees."""
  if not list(conn.execute("PRAGMA table_info(FeatureCoordTypes)")):
    return []
  out = []
  for feature_id, descr in conn.execute("SELECT feature_id, descr FROM FeatureCoordTypes"):
    if isinstance(feature_id, int) and 1 <= feature_id <= 21:
      expected = schemes.AFLW21_NAMES[feature_id - 1]
      if _normalized(descr) != _normalized(expected):
        out.append(f"feature_id {feature_id}: {descr!r} (expected {expected!r})")
  return out


class _FaceRows:
  """Collects the joined rows of one face and turns them into a schema face."""

  def __init__(self, sqlite_path: str, face_id: int):
    self.where, self.face_id = sqlite_path, face_id
    self.tables: Dict[str, Dict[int, tuple]] = {"FaceRect": {}, "FacePose": {}, "FaceMetaData": {}}
    self.coords: Dict[int, Tuple[int, float, float]] = {}  # feature_id -> (rowid, x, y)

  def _err(self, table, rowid, message):
    return manual.AnnotationError(
      f"{self.where}:{table}", rowid, f"face_id {self.face_id}: {message}"
    )

  def add(self, row) -> None:
    for table, (rowid, values) in zip(
      self.tables, ((row[2], row[3:7]), (row[7], row[8:11]), (row[11], row[12:13])), strict=True
    ):
      if rowid is not None:
        self.tables[table][rowid] = tuple(values)
    c_rowid, feature_id, x, y = row[13:17]
    if c_rowid is None:
      return
    if not isinstance(feature_id, int) or not 1 <= feature_id <= 21:
      raise self._err(
        "FeatureCoords",
        c_rowid,
        f"feature_id {feature_id!r} is outside 1..21 (AFLW-21, docs/papers.md 1.13)",
      )
    old = self.coords.get(feature_id)
    if old is not None and old[0] != c_rowid and (old[1], old[2]) != (x, y):
      raise self._err(
        "FeatureCoords",
        c_rowid,
        f"feature_id {feature_id} at ({x}, {y}) contradicts row {old[0]} at ({old[1]}, {old[2]})",
      )
    self.coords[feature_id] = (c_rowid, x, y)

  def _single(self, table) -> Tuple[Optional[int], Optional[tuple]]:
    rows = self.tables[table]
    distinct = sorted(set(rows.values()), key=repr)
    if len(distinct) > 1:
      ids = sorted(rows)
      raise self._err(table, ids[-1], f"rows {ids} give contradictory values {distinct}")
    if not rows:
      return None, None
    rowid = min(rows)
    return rowid, rows[rowid]

  def face(self) -> Dict[str, object]:
    labels: Dict[str, object] = {"face_id": np.int64(self.face_id)}
    rowid, rect = self._single("FaceRect")
    if rect is not None and None not in rect:
      if rect[2] <= 0 or rect[3] <= 0:
        raise self._err("FaceRect", rowid, f"box size w={rect[2]}, h={rect[3]} must be > 0")
      labels["box"] = rect
    _, pose = self._single("FacePose")
    if pose is not None and None not in pose:
      labels["pose"] = pose  # radians as stored (docs/papers.md section 5.1)
    rowid, meta = self._single("FaceMetaData")
    if meta is not None and meta[0] not in (None, ""):
      code = str(meta[0]).strip().lower()
      if code not in _SEX:
        raise self._err("FaceMetaData", rowid, f"sex {meta[0]!r} is not 'm' or 'f'")
      labels["gender"] = _SEX[code]
    points = np.zeros((21, 2), np.float32)
    visible = np.zeros(21, np.float32)
    for feature_id, (_, x, y) in self.coords.items():
      points[feature_id - 1] = (x, y)  # index = feature_id - 1 (docs/papers.md section 1.13)
      visible[feature_id - 1] = 1.0
    labels["visibility"] = visible
    if visible.any():
      labels["landmarks"] = points
    return manual.empty_face(**labels)


def iterate_images(conn, sqlite_path) -> Iterator[Tuple[str, List[Dict[str, object]]]]:
  """Streams (filepath, faces) per image from the ordered join (faces sorted by face_id)."""
  path, faces, current = None, [], None
  seen_faces: Dict[int, str] = {}
  for row in conn.execute(_QUERY):
    filepath, face_id = str(row[0]), int(row[1])
    if current is not None and (face_id != current.face_id or filepath != path):
      faces.append(current.face())
      current = None
    if filepath != path:
      if path is not None:
        yield path, faces
      path, faces = filepath, []
    if current is None:
      if face_id in seen_faces and seen_faces[face_id] != filepath:
        raise manual.AnnotationError(
          f"{sqlite_path}:Faces",
          None,
          f"face_id {face_id} belongs to two images ({seen_faces[face_id]}, {filepath})",
        )
      seen_faces[face_id] = filepath
      current = _FaceRows(sqlite_path, face_id)
    current.add(row)
  if current is not None:
    faces.append(current.face())
  if path is not None:
    yield path, faces


class Aflw(tfds.core.GeneratorBasedBuilder):
  """AFLW scenes: images with every face's box, 21 landmarks, pose and gender."""

  VERSION = _VERSION
  BUILDER_CONFIGS = [AflwConfig.make()]
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
    f"Request AFLW at {URL}; extract aflw-db.tar.gz and aflw-images-{{0,2,3}}.tar.gz so "
    "that manual_dir/aflw/data/aflw.sqlite (or manual_dir/aflw.sqlite) and "
    "flickr/{0,2,3}/ next to it exist (docs/datasets/aflw.md)."
  )

  def _info(self):
    return self.dataset_info_from_configs(
      description=__doc__.split("\n\n")[0] + " Bad-image counts are in the metadata.",
      features=manual.face_scene_features(
        face_extra={"face_id": tfds.features.Tensor(shape=(), dtype=np.int64)}
      ),
      homepage=URL,
      metadata=tfds.core.MetadataDict(),
    )

  def _split_generators(self, dl_manager):
    root = find_root(dl_manager.manual_dir)
    sqlite_path = os.path.join(root, "aflw.sqlite")
    manual.require(
      root,
      "flickr",
      dataset="aflw",
      url=URL,
      hint="extract aflw-images-{0,2,3}.tar.gz next to aflw.sqlite",
    )
    with aflw_split.connect_readonly(sqlite_path) as conn:
      check_schema(conn, sqlite_path)
      mismatches = feature_name_mismatches(conn)
      if mismatches:  # a warning, not an error: the descr spelling of releases may vary
        logging.warning(
          "aflw: FeatureCoordTypes names differ from the AFLW-21 order of "
          "data/schemes.py (landmarks may be permuted): %s",
          mismatches,
        )
      self.info.metadata["feature_name_mismatches"] = mismatches
      images = aflw_split.image_face_ids(conn)
      test_ids, source = self._test_faces(images)
      check_split_sizes(
        images,
        test_ids,
        self.builder_config.test_faces,
        source,
        sqlite_path,
      )
    return {
      "train": self._generate_examples(root, test_ids, "train"),
      "test": self._generate_examples(root, test_ids, "test"),
    }

  def _test_faces(self, images) -> Tuple[Set[int], str]:
    """(test face ids, "list" or "rule") from the database's filepath -> face_ids."""
    num_faces = self.builder_config.test_faces
    listed = aflw_split.read_face_ids()
    available = {f for ids in images.values() for f in ids}
    meta = self.info.metadata
    meta["test_faces_rule_size"] = num_faces
    if listed and num_faces == aflw_split.DEFAULT_NUM_FACES:
      missing = sorted(set(listed) - available)
      if missing:
        logging.warning(
          "aflw: %d of %d listed test faces are not in this database (other AFLW release?): %s",
          len(missing),
          len(listed),
          missing[:20],
        )
      meta["test_faces_source"] = "repository list aflw_test_faces.txt"
      meta["test_faces_missing"] = missing
      return set(listed) & available, "list"
    rule = aflw_split.select_test_faces(images, num_faces=num_faces)
    if listed:
      logging.warning(
        "aflw: builder config %r takes %d test faces by the aflw_split rule on this "
        "database instead of the %d listed in aflw_test_faces.txt (%d test faces).",
        self.builder_config.name,
        num_faces,
        len(listed),
        len(rule),
      )
    else:
      logging.warning(
        "aflw: aflw_test_faces.txt lists no ids; applying its rule to this "
        "database (%d test faces). Commit them with the aflw_split CLI.",
        len(rule),
      )
    meta["test_faces_source"] = "aflw_split rule applied to this database"
    meta["test_faces_missing"] = []
    return set(rule), "rule"

  def _generate_examples(self, root, test_ids: Set[int], split: str):
    sqlite_path = os.path.join(root, "aflw.sqlite")
    reader = face_crops.EncodedImageReader("aflw")  # JPEG bytes kept as they are
    with aflw_split.connect_readonly(sqlite_path) as conn:
      for filepath, faces in iterate_images(conn, sqlite_path):
        is_test = any(int(f["face_id"]) in test_ids for f in faces)
        if is_test != (split == "test"):
          continue
        got = reader.read_encoded(os.path.join(root, "flickr", filepath))
        if got is None:
          continue
        yield filepath, {"image": got[0], "image/filename": filepath, "faces": faces}
    stats = reader.finish()
    self.info.metadata[f"{split}/num_images"] = stats["num_images"]
    self.info.metadata[f"{split}/num_bad_images"] = stats["num_bad_images"]
    self.info.metadata[f"{split}/bad_images"] = [
      os.path.relpath(p, os.path.join(root, "flickr")) for p in stats["bad_images"]
    ]
