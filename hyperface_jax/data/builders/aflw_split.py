"""The HyperFace AFLW test split: a fixed list of face ids and the rule that makes it.

docs/papers.md sections 1.12 and 5.10: HyperFace evaluates on 1000 held-out AFLW faces; the
paper's own list is not published, so we fix a seeded one. The list lives in the repository
(`aflw_test_faces.txt`, one face_id per line, `#` comments) so that every user evaluates on
the same faces. Rule that generates it (documented default):

  1. take every image reachable through `Faces JOIN FaceImages ON file_id` in aflw.sqlite,
     keyed by FaceImages.filepath, with the face_ids of its faces;
  2. sort the filepaths, shuffle them with np.random.default_rng(0).permutation;
  3. take images in that order until >= 1000 faces are taken (whole images, because the
     builder emits one example per image with every face, docs/design.md section 5);
  4. write their face_ids, sorted.

The 1000 is the aflw builder's `AflwConfig.test_faces` (config "default"); another value
(`prepare aflw --test_faces=N`, config "test<N>") applies this rule with N faces to the
user's database, e.g. for a subset of AFLW with too few faces for 1000 test faces and a
train split (the builder then raises `aflw.SplitTooSmall`, saying so).

A user's copy that lacks some listed ids (another AFLW release) still builds: the missing
ids are counted in the dataset metadata and logged, and the test split is smaller. When the
repository file holds no ids (it ships empty until someone with the 2012-11-28 database
runs the rule) the builder applies the rule to the user's database and records that in the
metadata; `python -m hyperface_jax.data.builders.aflw_split --sqlite=aflw.sqlite
--output=hyperface_jax/data/builders/aflw_test_faces.txt` writes the list to commit.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
from typing import Dict, Iterable, List, Optional, Sequence

import numpy as np

TEST_FACES_FILE = os.path.join(os.path.dirname(__file__), "aflw_test_faces.txt")
DEFAULT_SEED = 0
DEFAULT_NUM_FACES = 1000  # docs/papers.md section 1.12 / 5.10


def connect_readonly(path) -> sqlite3.Connection:
  """Opens an SQLite file read-only (the user's download is never modified)."""
  uri = "file:" + os.path.abspath(os.fspath(path)).replace("?", "%3f") + "?mode=ro"
  return sqlite3.connect(uri, uri=True)


def image_face_ids(conn: sqlite3.Connection) -> Dict[str, List[int]]:
  """filepath -> sorted face_ids of the faces reachable through the Faces/FaceImages join."""
  out: Dict[str, List[int]] = {}
  rows = conn.execute(
    "SELECT fi.filepath, f.face_id FROM Faces f JOIN FaceImages fi "
    "ON fi.file_id = f.file_id ORDER BY fi.filepath, f.face_id"
  )
  for filepath, face_id in rows:
    out.setdefault(str(filepath), []).append(int(face_id))
  return out


def select_test_faces(
  images: Dict[str, Sequence[int]], seed: int = DEFAULT_SEED, num_faces: int = DEFAULT_NUM_FACES
) -> List[int]:
  """The rule of this module's docstring: whole images in seeded order until num_faces."""
  paths = sorted(images)
  chosen: List[int] = []
  for i in np.random.default_rng(seed).permutation(len(paths)):
    if len(chosen) >= num_faces:
      break
    chosen.extend(int(f) for f in images[paths[i]])
  return sorted(set(chosen))


def read_face_ids(path: str = TEST_FACES_FILE) -> List[int]:
  """Face ids of a list file (one integer per line; blank and `#` lines skipped)."""
  from hyperface_jax.data.builders.manual import AnnotationError

  ids = []
  with open(path, encoding="utf-8") as f:
    for number, line in enumerate(f, start=1):
      text = line.split("#", 1)[0].strip()
      if not text:
        continue
      try:
        ids.append(int(text))
      except ValueError:
        raise AnnotationError(path, number, f"expected one integer face_id, got {text!r}") from None
  return ids


def write_face_ids(ids: Iterable[int], path: str, header: Optional[str] = None) -> None:
  """Writes a list file atomically (temp name, then os.replace)."""
  tmp = path + ".tmp"
  with open(tmp, "w", encoding="utf-8") as f:
    f.write("# " + (header or "AFLW HyperFace test faces (aflw_split.py rule)") + "\n")
    for face_id in sorted(ids):
      f.write(f"{int(face_id)}\n")
  os.replace(tmp, path)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description="Writes the AFLW HyperFace test face list.")
  parser.add_argument("--sqlite", required=True)
  parser.add_argument("--output", default=TEST_FACES_FILE)
  parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
  parser.add_argument("--num_faces", type=int, default=DEFAULT_NUM_FACES)
  args = parser.parse_args(argv)
  with connect_readonly(args.sqlite) as conn:
    ids = select_test_faces(image_face_ids(conn), args.seed, args.num_faces)
  write_face_ids(
    ids,
    args.output,
    f"AFLW HyperFace test faces: seed {args.seed}, "
    f">= {args.num_faces} faces in whole images (aflw_split.py rule)",
  )
  print(f"wrote {len(ids)} face ids to {args.output}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
