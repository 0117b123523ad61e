"""Writes AFLW fixtures in the original format: a real aflw.sqlite + JPEGs under flickr/.

Tables and columns as docs/papers.md section 5.1 (the 2012-11-28 schema). Shared by
tests/test_builders_aflw.py and bench/builder_memory.py.
"""

from __future__ import annotations

import dataclasses
import os
import sqlite3
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image

from hyperface_jax.data import schemes

SCHEMA = """
CREATE TABLE Databases (db_id INTEGER PRIMARY KEY, path TEXT, description TEXT);
CREATE TABLE FaceImages (image_id INTEGER PRIMARY KEY, db_id INTEGER, file_id TEXT,
                         filepath TEXT, bw INTEGER, width INTEGER, height INTEGER);
CREATE TABLE Faces (face_id INTEGER PRIMARY KEY, file_id TEXT, db_id INTEGER);
CREATE TABLE FaceRect (face_id INTEGER, x INTEGER, y INTEGER, w INTEGER, h INTEGER,
                       annot_type_id INTEGER);
CREATE TABLE FaceEllipse (face_id INTEGER, x FLOAT, y FLOAT, ra FLOAT, rb FLOAT, theta FLOAT,
                          annot_type_id INTEGER, upsidedown INTEGER);
CREATE TABLE FacePose (face_id INTEGER, roll FLOAT, pitch FLOAT, yaw FLOAT,
                       annot_type_id INTEGER);
CREATE TABLE FaceMetaData (face_id INTEGER, sex TEXT, occluded INTEGER, glasses INTEGER,
                           bw INTEGER, annot_type_id INTEGER);
CREATE TABLE FeatureCoords (face_id INTEGER, feature_id INTEGER, x FLOAT, y FLOAT);
CREATE TABLE FeatureCoordTypes (feature_id INTEGER PRIMARY KEY, descr TEXT, code TEXT,
                                x FLOAT, y FLOAT, z FLOAT);
CREATE TABLE AnnotationType (annot_type_id INTEGER PRIMARY KEY, CODE TEXT, description TEXT);
"""


@dataclasses.dataclass
class FixtureFace:
  face_id: int
  rect: Optional[Tuple[int, int, int, int]] = (10, 10, 40, 40)
  pose: Optional[Tuple[float, float, float]] = (0.1, -0.2, 0.3)
  sex: Optional[str] = "m"
  points: Dict[int, Tuple[float, float]] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class FixtureImage:
  filepath: str  # relative to flickr/, e.g. "0/image00002.jpg"
  faces: List[FixtureFace]
  size: Tuple[int, int] = (48, 64)  # H, W
  corrupt: bool = False  # write truncated JPEG bytes instead of an image


def _jpeg(path, size, seed):
  h, w = size
  rng = np.random.default_rng(seed)
  pixels = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
  os.makedirs(os.path.dirname(path), exist_ok=True)
  Image.fromarray(pixels).save(path, format="JPEG", quality=90)


def write_aflw(root, images: Sequence[FixtureImage], extra_sql: Sequence[str] = ()) -> str:
  """Writes root/aflw.sqlite and root/flickr/<filepath> JPEGs; returns the sqlite path."""
  os.makedirs(root, exist_ok=True)
  path = os.path.join(root, "aflw.sqlite")
  conn = sqlite3.connect(path)
  conn.executescript(SCHEMA)
  conn.execute("INSERT INTO Databases VALUES (1, 'flickr', 'Flickr images')")
  conn.execute("INSERT INTO AnnotationType VALUES (1, 'CALC', 'calculated')")
  for i, name in enumerate(schemes.AFLW21_NAMES):
    x, y, z = schemes.AFLW21_MEAN_FACE_3D[i]
    conn.execute(
      "INSERT INTO FeatureCoordTypes VALUES (?, ?, ?, ?, ?, ?)",
      (i + 1, name, name[:4].upper(), x, y, z),
    )
  for image_id, im in enumerate(images, start=1):
    file_id = os.path.basename(im.filepath)
    conn.execute(
      "INSERT INTO FaceImages VALUES (?, 1, ?, ?, 0, ?, ?)",
      (image_id, file_id, im.filepath, im.size[1], im.size[0]),
    )
    full = os.path.join(root, "flickr", im.filepath)
    if im.corrupt:
      os.makedirs(os.path.dirname(full), exist_ok=True)
      with open(full, "wb") as f:
        f.write(b"\xff\xd8\xff\xe0 truncated")
    else:
      _jpeg(full, im.size, image_id)
    for face in im.faces:
      conn.execute("INSERT INTO Faces VALUES (?, ?, 1)", (face.face_id, file_id))
      if face.rect is not None:
        conn.execute("INSERT INTO FaceRect VALUES (?, ?, ?, ?, ?, 1)", (face.face_id,) + face.rect)
      if face.pose is not None:
        conn.execute("INSERT INTO FacePose VALUES (?, ?, ?, ?, 1)", (face.face_id,) + face.pose)
      if face.sex is not None:
        conn.execute("INSERT INTO FaceMetaData VALUES (?, ?, 0, 0, 0, 1)", (face.face_id, face.sex))
      for feature_id, (x, y) in sorted(face.points.items()):
        conn.execute(
          "INSERT INTO FeatureCoords VALUES (?, ?, ?, ?)", (face.face_id, feature_id, x, y)
        )
  for sql in extra_sql:
    conn.execute(sql)
  conn.commit()
  conn.close()
  return path


def standard_images() -> List[FixtureImage]:
  """Three images: two faces, a face with missing landmark rows and a box past the image,
  a female face without pose/metadata rows."""
  return [
    FixtureImage(
      "0/image00002.jpg",
      [
        FixtureFace(
          39341,
          rect=(5, 6, 30, 30),
          pose=(0.05, -0.1, 0.6),
          sex="m",
          points={
            1: (7.5, 9.25),
            8: (12.0, 14.0),
            11: (25.0, 14.5),
            15: (18.0, 22.0),
            21: (19.0, 33.0),
          },
        ),
        FixtureFace(
          39342,
          rect=(40, 2, 20, 20),
          pose=(-0.02, 0.3, -1.2),
          sex="f",
          points={k: (40.0 + k, 2.0 + k) for k in range(1, 22)},
        ),
      ],
    ),
    # box partly outside the image (x < 0 and x + w > W); only 2 of 21 points annotated
    FixtureImage(
      "2/image13457.jpg",
      [
        FixtureFace(
          40001,
          rect=(-12, 20, 70, 70),
          pose=(0.0, 0.0, 1.4),
          sex="f",
          points={13: (3.0, 30.0), 18: (20.5, 40.25)},
        ),
      ],
      size=(60, 50),
    ),
    # no FacePose / FaceMetaData rows, no landmark rows at all
    FixtureImage(
      "3/image00035.jpg",
      [
        FixtureFace(40500, rect=(1, 1, 10, 10), pose=None, sex=None, points={}),
      ],
    ),
  ]


def many_images(count: int, size=(64, 64), faces_per_image: int = 2) -> List[FixtureImage]:
  """`count` images with `faces_per_image` fully annotated faces (for the memory bench)."""
  out = []
  rng = np.random.default_rng(0)
  for i in range(count):
    faces = []
    for j in range(faces_per_image):
      fid = 100000 + i * faces_per_image + j
      pts = {k: tuple(float(v) for v in rng.uniform(0, size[1] - 1, 2)) for k in range(1, 22)}
      faces.append(
        FixtureFace(
          fid, rect=(2 + 20 * j, 3, 18, 18), pose=(0.1, 0.2, 0.3), sex="mf"[j % 2], points=pts
        )
      )
    out.append(FixtureImage(f"{(0, 2, 3)[i % 3]}/image{20000 + i:05d}.jpg", faces, size))
  return out
