"""Drawing faces (box, landmarks, visibility, pose axes, gender, score) with cv2.

Conventions (used by `predict` PNGs and report/crops.png):
  * Images are uint8 RGB [H, W, 3]; colours are RGB tuples. Coordinates are
    pixels, x right, y down (docs/design.md section 6).
  * Landmarks: a visible point (visibility >= 0.5, labels or probabilities) is
    a filled circle, an invisible one a hollow circle, both in `colour`; the
    report draws truth green (0, 255, 0) and predictions red (255, 0, 0).
  * Pose axes, drawn from `pose_origin` (default NoseCenter, else box centre):
    x red, y green, z blue, the axes of the head-model frame (AFLW 3-D mean
    face, docs/papers.md section 5.1: x towards image-right of a frontal face, y up,
    z out of the face). The rotation is the synthetic renderer's, imported from
    `hyperface_jax.data.face_model.rotation_matrix` so the two always agree:
    R = F @ Rz(roll) @ Ry(yaw) @ Rx(pitch), F = diag(1, -1, -1), right-handed
    elementary rotations, radians, mapping the model frame to the camera frame
    (x right, y down, z into the image). Axis k is drawn orthographically as the
    image offset length * (R[0, k], R[1, k]). Hence a frontal face (0, 0, 0)
    shows x right, y up and z as a dot; yaw > 0 swings z towards image-right
    (the face turns right), pitch > 0 swings z down (the face looks down), and
    roll > 0 turns x counter-clockwise on screen. A horizontal flip (negating
    roll and yaw, docs/papers.md section 1.13) mirrors the drawing.
  * Text goes above the box (or the top-left corner without a box) in `colour`,
    over a black outline so that it reads on any photograph: the gender label with
    the probability of THAT label ("F 0.87" = p_female 0.87, "M 0.90" = p_female
    0.10; the label alone when no probability is given) and the detection score
    ("s 0.95").
  * Several faces (`draw_faces`, the predict CLI): each face gets its own colour from
    FACE_COLOURS (in order of the list given, i.e. by decreasing score for the
    analyzer's output), so that overlapping faces stay apart; the pose axes keep the
    x red / y green / z blue colours.
"""

from __future__ import annotations

import cv2
import numpy as np

from hyperface_jax.data.face_model import rotation_matrix
from hyperface_jax.data.schemes import AFLW21_INDEX

AXIS_COLOURS = ((255, 0, 0), (0, 255, 0), (0, 0, 255))  # x red, y green, z blue


def pose_axes_2d(pose, length: float) -> np.ndarray:
  """Image-plane offsets [3, 2] (pixels) of the model x, y, z axes.

  Args:
    pose: (roll, pitch, yaw) radians.
    length: axis length in pixels.

  Returns:
    Row k is the offset of axis k: length * (R[0, k], R[1, k]).
  """
  rot = rotation_matrix(*[float(a) for a in pose])
  return length * np.stack([rot[0, :], rot[1, :]], axis=1)


def region_to_crop_pixels(points, size: int) -> np.ndarray:
  """Region-normalized landmarks (docs/papers.md section 1.5) -> crop pixels.

  The crop is the region resized to size x size, so x_px = (a + 0.5) * size.
  """
  return (np.asarray(points, np.float64) + 0.5) * size


def _pt(xy):
  return (int(round(float(xy[0]))), int(round(float(xy[1]))))


def draw_face(
  image,
  box=None,
  landmarks=None,
  visibility=None,
  pose=None,
  gender=None,
  p_female=None,
  score=None,
  colour=(0, 255, 0),
  pose_origin=None,
  axis_length=None,
  radius=None,
  thickness=None,
  copy=True,
) -> np.ndarray:
  """Draws one face's predictions or labels (conventions in the module doc).

  Args:
    image: uint8 RGB [H, W, 3].
    box: optional [4] x, y, w, h pixels.
    landmarks: optional [K, 2] pixels.
    visibility: optional [K] labels or probabilities (None: all visible).
    pose: optional (roll, pitch, yaw) radians, drawn as 3-D axes.
    gender: optional label 0 male / 1 female (text "M"/"F").
    p_female: optional P(female); the text shows the probability of the drawn label.
    score: optional detection score.
    colour: RGB for box, points and text.
    pose_origin: optional [2] pixel origin of the axes.
    axis_length, radius, thickness: pixel sizes (default: scaled to the face).
    copy: draw on a copy (True) or in place.

  Returns:
    The drawn uint8 image.
  """
  image = np.asarray(image)
  if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
    raise ValueError(f"image must be uint8 [H, W, 3] RGB; got {image.dtype} {image.shape}.")
  out = np.ascontiguousarray(image.copy() if copy else image)
  h, w = out.shape[:2]
  face_size = float(np.sqrt(box[2] * box[3])) if box is not None else float(min(h, w))
  thickness = thickness or max(1, int(round(face_size / 100)))
  radius = radius or max(1, int(round(face_size / 60)))
  colour = tuple(int(c) for c in colour)
  if box is not None:
    x, y, bw, bh = (float(v) for v in box)
    cv2.rectangle(out, _pt((x, y)), _pt((x + bw, y + bh)), colour, thickness)
  if landmarks is not None:
    landmarks = np.asarray(landmarks, np.float64)
    vis = np.ones(len(landmarks)) if visibility is None else np.asarray(visibility)
    for point, v in zip(landmarks, vis, strict=True):
      if np.all(np.isfinite(point)):
        cv2.circle(out, _pt(point), radius, colour, -1 if v >= 0.5 else 1, cv2.LINE_AA)
  if pose is not None:
    if pose_origin is None:
      if landmarks is not None and len(landmarks) == len(AFLW21_INDEX):
        pose_origin = landmarks[AFLW21_INDEX["NoseCenter"]]
      elif box is not None:
        pose_origin = (box[0] + box[2] / 2, box[1] + box[3] / 2)
      else:
        pose_origin = (w / 2, h / 2)
    length = axis_length or 0.4 * face_size
    for offset, axis_colour in zip(pose_axes_2d(pose, length), AXIS_COLOURS, strict=True):
      end = np.asarray(pose_origin, np.float64) + offset
      cv2.line(out, _pt(pose_origin), _pt(end), axis_colour, thickness, cv2.LINE_AA)
  text = []
  if gender is not None:
    text.append(gender_text(int(gender), p_female))
  if score is not None:
    text.append(f"s {float(score):.2f}")
  if text:
    anchor = (box[0], box[1] - 3 * thickness) if box is not None else (2, 12)
    anchor = (anchor[0], max(anchor[1], 10))
    font_scale, weight = max(0.3, face_size / 300), max(1, thickness // 2)
    for c, extra in (((0, 0, 0), 2), (colour, 0)):  # black outline, then the colour
      cv2.putText(
        out,
        " ".join(text),
        _pt(anchor),
        cv2.FONT_HERSHEY_SIMPLEX,
        font_scale,
        c,
        weight + extra,
        cv2.LINE_AA,
      )
  return out


def gender_text(gender: int, p_female=None) -> str:
  """ "F 0.87" / "M 0.90": the label and the probability of that label."""
  if gender not in (0, 1):
    raise ValueError(f"gender must be 0 (male) or 1 (female), got {gender}")
  if p_female is None:
    return "MF"[gender]
  p = float(p_female) if gender == 1 else 1.0 - float(p_female)
  return f"{'MF'[gender]} {p:.2f}"


FACE_COLOURS = (
  (0, 255, 0),
  (255, 255, 0),
  (0, 255, 255),
  (255, 0, 255),
  (255, 128, 0),
  (128, 128, 255),
  (255, 255, 255),
  (0, 128, 255),
)


def draw_faces(
  image, faces, colours=FACE_COLOURS, draw_pose: bool = True, copy: bool = True
) -> np.ndarray:
  """Draws the analyzer's faces (conventions in the module doc).

  Args:
    image: uint8 RGB [H, W, 3].
    faces: objects with the attributes of `inference.analyzer.Face`: box [4] px, score,
      landmarks [21, 2] px, visibility [21] probabilities, pose [3] radians, p_female.
    colours: RGB colours given to the faces in turn.
    draw_pose: draw the 3-D pose axes.
    copy: draw on a copy (True) or in place.

  Returns:
    The drawn uint8 image.
  """
  out = np.array(image, copy=True) if copy else image
  for i, face in enumerate(faces):
    p_female = getattr(face, "p_female", None)
    out = draw_face(
      out,
      box=face.box,
      landmarks=face.landmarks,
      visibility=face.visibility,
      pose=face.pose if draw_pose else None,
      gender=None if p_female is None else int(float(p_female) >= 0.5),
      p_female=p_female,
      score=face.score,
      colour=colours[i % len(colours)],
      copy=False,
    )
  return out
