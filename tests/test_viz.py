"""Drawing of the analyzer's faces (viz.draw_faces, viz.gender_text): pixels where expected."""

import numpy as np
import pytest

from hyperface_jax import viz
from hyperface_jax.inference.analyzer import Face


def _face(box, score=0.9, p_female=0.8, pose=(0.0, 0.0, 0.0), visible=True):
  x, y, w, h = box  # landmarks on a 7 x 3 grid: point k at column k % 7, row k // 7
  col, row = np.arange(21) % 7, np.arange(21) // 7
  landmarks = np.stack([x + w * (0.1 + 0.8 * col / 6), y + h * (0.3 + 0.2 * row)], axis=1)
  return Face(
    box=np.array(box, np.float32),
    score=score,
    landmarks=landmarks,
    visibility=np.full(21, 0.9 if visible else 0.1, np.float32),
    pose=np.array(pose, np.float32),
    p_female=p_female,
  )


def test_gender_text_shows_the_probability_of_the_drawn_label():
  assert viz.gender_text(1, 0.87) == "F 0.87"
  assert viz.gender_text(0, 0.1) == "M 0.90"
  assert viz.gender_text(0) == "M"
  with pytest.raises(ValueError, match="gender must be 0"):
    viz.gender_text(-1, 0.5)


def test_draw_faces_gives_each_face_its_colour_and_keeps_the_input():
  image = np.zeros((120, 200, 3), np.uint8)
  faces = [_face((20, 40, 60, 60)), _face((120, 40, 60, 60), p_female=0.2)]
  out = viz.draw_faces(image, faces, draw_pose=False)
  assert image.max() == 0  # drawn on a copy
  # Box outlines (thickness 1 for a 60 px face): left edge x=20 and x=120, mid-height.
  assert tuple(out[70, 20]) == viz.FACE_COLOURS[0]
  assert tuple(out[70, 120]) == viz.FACE_COLOURS[1]
  # Inside the boxes, between the top edge (y 40) and the first landmark row (y 58).
  assert out[44:54, 30:70].max() == 0 and out[44:54, 130:170].max() == 0
  # Visible points are filled discs of the face's colour: point 0 at (26, 58).
  assert tuple(out[58, 26]) == viz.FACE_COLOURS[0]
  # Text (gender, score) above each box, nowhere below.
  assert out[20:38, 20:80].max() > 0 and out[20:38, 120:180].max() > 0
  assert out[101:120].max() == 0


def test_invisible_landmarks_are_hollow_and_pose_axes_are_drawn():
  image = np.zeros((200, 200, 3), np.uint8)
  face = _face((40, 40, 120, 120), pose=(0.0, 0.0, 0.0), visible=False)
  out = viz.draw_faces(image, [face], colours=[(255, 255, 255)])
  cx, cy = 100, 76  # landmark 3: (40 + 0.5 * 120, 40 + 0.3 * 120); radius 2 at 120 px
  np.testing.assert_allclose(face.landmarks[3], [cx, cy])
  assert out[cy, cx].max() == 0  # hollow centre
  assert out[cy - 3 : cy + 4, cx - 3 : cx + 4].max() == 255  # ring around it
  # Axes from NoseCenter (landmark 14: column 0, row 2 -> (52, 124)), length 0.4 * 120
  # = 48 px: x axis (red) to the right, y axis (green) upwards, z a dot (frontal face).
  np.testing.assert_allclose(face.landmarks[14], [52, 124])
  assert out[124, 75, 0] > 150 and out[124, 75, 1] < 100
  assert out[110, 52, 1] > 150 and out[110, 52, 0] < 100
  assert out[150, 52].max() == 0 and out[124, 30].max() == 0  # nothing below or left
