"""Backgrounds, face-like distractors, occluders and camera effects of synthetic scenes."""

from __future__ import annotations

import cv2
import numpy as np

from hyperface_jax.data import render_draw as rd


def background(rng, h, w):
  """Cluttered background: gradient, low-frequency texture, random shapes and lines."""
  c0, c1 = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
  ang = rng.uniform(0, 2 * np.pi)
  yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
  t = (np.cos(ang) * xx / w + np.sin(ang) * yy / h + 1.0) / 2.0
  img = c0 + (c1 - c0) * t[..., None]
  tex = rng.normal(0, rng.uniform(5, 30), (max(2, h // 8), max(2, w // 8), 3))
  img += cv2.resize(tex, (w, h), interpolation=cv2.INTER_CUBIC)
  img = np.clip(img, 0, 255).astype(np.uint8)
  for _ in range(int(rng.integers(3, 14))):
    col = tuple(float(v) for v in rng.uniform(0, 255, 3))
    kind = rng.integers(4)
    cx, cy = rng.uniform(-0.1, 1.1) * w, rng.uniform(-0.1, 1.1) * h
    size = rng.uniform(0.05, 0.4) * min(h, w)
    if kind == 0:
      cv2.rectangle(
        img,
        (int(cx), int(cy)),
        (int(cx + size), int(cy + size * rng.uniform(0.3, 2))),
        col,
        -1,
        cv2.LINE_AA,
      )
    elif kind == 1:
      cv2.circle(img, (int(cx), int(cy)), int(size / 2), col, -1, cv2.LINE_AA)
    elif kind == 2:
      pts = np.stack([cx + rng.uniform(-size, size, 5), cy + rng.uniform(-size, size, 5)], 1)
      rd.fill(img, pts, col)
    else:
      x2, y2 = rng.uniform(0, w), rng.uniform(0, h)
      cv2.line(
        img, (int(cx), int(cy)), (int(x2), int(y2)), col, int(rng.integers(1, 4)), cv2.LINE_AA
      )
  return img


def distractors(rng, img, n, skin_colors):
  """Face-like blobs without features: skin-coloured ellipses, some with a hair cap."""
  h, w = img.shape[:2]
  for _ in range(n):
    col = skin_colors[rng.integers(len(skin_colors))] * rng.uniform(0.85, 1.1, 3)
    cx, cy = rng.uniform(0, w), rng.uniform(0, h)
    ax = rng.uniform(0.08, 0.25) * min(h, w)
    ay = ax * rng.uniform(1.0, 1.5)
    angle = rng.uniform(-40, 40)
    if rng.random() < 0.5:
      hair = tuple(float(v) for v in rng.uniform(10, 120, 3))
      cv2.ellipse(
        img,
        (int(cx), int(cy - 0.2 * ay)),
        (int(ax * 1.1), int(ay)),
        angle,
        0,
        360,
        hair,
        -1,
        cv2.LINE_AA,
      )
    cv2.ellipse(
      img,
      (int(cx), int(cy)),
      (int(ax), int(ay)),
      angle,
      0,
      360,
      tuple(float(v) for v in np.clip(col, 0, 255)),
      -1,
      cv2.LINE_AA,
    )
    if rng.random() < 0.3:  # a single dark stroke: feature-like but not a face
      cv2.line(
        img, (int(cx - ax / 2), int(cy)), (int(cx + ax / 2), int(cy)), (40, 30, 30), 1, cv2.LINE_AA
      )


def occluder(rng, img, owner, posed, prm, p21_xy, box):
  """Draws prm.occluder (hand / hat / bar) over the face; writes id 254 into owner."""
  side = box[2]
  kind = prm.occluder
  if kind == "hand":
    target = p21_xy[rng.choice([17, 18, 19, 20, 13, 7, 10])]
    c = target + rng.normal(0, 0.08 * side, 2)
    palm = np.stack(
      [
        c + 0.17 * side * np.array([np.cos(a) * 1.0, np.sin(a) * 1.25])
        for a in np.linspace(0, 2 * np.pi, 14, endpoint=False)
      ]
    )
    col = prm.skin * rng.uniform(0.8, 1.0)
    rd.fill(img, palm, col, owner, 254)
    direction = rng.uniform(-np.pi, np.pi)
    for k in range(4):
      a = direction + (k - 1.5) * 0.3
      tip = c + 0.42 * side * np.array([np.cos(a), np.sin(a)])
      base = c + 0.1 * side * np.array([np.cos(a), np.sin(a)])
      nrm = 0.045 * side * np.array([-np.sin(a), np.cos(a)])
      rd.fill(img, np.stack([base - nrm, tip - nrm, tip + nrm, base + nrm]), col, owner, 254)
  elif kind == "hat":
    brow_y = p21_xy[[0, 1, 4, 5], 1].mean()
    top_y = box[1] - 0.2 * side
    low = brow_y - rng.uniform(-0.05, 0.12) * side
    cx = box[0] + side / 2
    col = rng.uniform(0, 255, 3)
    rd.fill(
      img,
      np.array(
        [
          [cx - 0.62 * side, low],
          [cx + 0.62 * side, low],
          [cx + 0.45 * side, top_y],
          [cx - 0.45 * side, top_y],
        ]
      ),
      col,
      owner,
      254,
    )
    rd.fill(
      img,
      np.array(
        [
          [cx - 0.8 * side, low],
          [cx + 0.8 * side, low],
          [cx + 0.8 * side, low - 0.08 * side],
          [cx - 0.8 * side, low - 0.08 * side],
        ]
      ),
      col * 0.8,
      owner,
      254,
    )
  elif kind == "bar":  # microphone / scarf / object across the lower or middle face
    y = p21_xy[rng.choice([18, 20, 14])][1] + rng.normal(0, 0.05 * side)
    hh = rng.uniform(0.08, 0.2) * side
    x0 = box[0] + rng.uniform(-0.3, 0.4) * side
    x1 = x0 + rng.uniform(0.4, 1.0) * side
    rd.fill(
      img,
      np.array([[x0, y - hh], [x1, y - hh], [x1, y + hh], [x0, y + hh]]),
      rng.uniform(0, 255, 3),
      owner,
      254,
    )


def camera_effects(rng, img):
  """Global lighting gradient, blur, sensor noise and JPEG artefacts."""
  h, w = img.shape[:2]
  out = img.astype(np.float32)
  gx, gy = rng.normal(0, 0.25, 2)
  yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
  gain = 1.0 + gx * (xx / w - 0.5) + gy * (yy / h - 0.5)
  out *= (gain * rng.uniform(0.75, 1.2))[..., None]
  sigma = rng.uniform(0.0, 1.1)
  if sigma > 0.3:
    out = cv2.GaussianBlur(out, (0, 0), sigma)
  out += rng.normal(0, rng.uniform(0, 7), out.shape).astype(np.float32)
  out = np.clip(out, 0, 255).astype(np.uint8)
  q = int(rng.integers(35, 96))
  ok, buf = cv2.imencode(
    ".jpg",
    np.ascontiguousarray(out[..., ::-1]),  # cv2 wants BGR
    [cv2.IMWRITE_JPEG_QUALITY, q],
  )
  if not ok:
    raise RuntimeError("JPEG encoding failed")
  return np.ascontiguousarray(cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1])
