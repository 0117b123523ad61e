"""Batched, jittable HOG (histograms of oriented gradients) for the bridging layer.

The bridging layer of the social-relation system (docs/papers.md section 3.3) describes a
face by its HOG feature's distances to cluster templates. This is the HOG of Dalal & Triggs
as scikit-image's `skimage.feature.hog` computes it, with its defaults for everything the
config does not set, written in jax.numpy so that the whole batch is one jitted computation
inside the model (docs/social.md "Bridging layer: where h is computed" has the timing):

  1. gradients by central differences, zero on the border rows / columns:
     g_row[r] = I[r + 1] - I[r - 1], g_col[c] = I[c + 1] - I[c - 1];
  2. magnitude hypot(g_col, g_row), unsigned orientation degrees(arctan2(g_row, g_col))
     mod 180;
  3. cells of `pixels_per_cell` x `pixels_per_cell` pixels (the image is cut to whole
     cells, from the top-left): per cell and orientation bin i (orientation in
     [i, i + 1) x 180 / orientations, no interpolation), the sum of the magnitudes
     divided by the cell's pixel count;
  4. overlapping blocks of `cells_per_block` x `cells_per_block` cells (stride one cell),
     each normalised with L2-Hys: v / sqrt(|v|^2 + eps^2), clipped at 0.2, normalised
     again (eps = 1e-5);
  5. the blocks flattened in (block row, block column, cell row, cell column, bin) order.

  feats = hog(grey [B, H, W], orientations=9, pixels_per_cell=8, cells_per_block=2)
  hog_dim(48, 48, 9, 8, 2)   # 900 = 5 x 5 blocks x 2 x 2 cells x 9 bins

tests/test_social_bridging.py checks it against a loop-by-loop NumPy transcription of the
five steps (and against scikit-image itself when that is installed).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

EPS = 1e-5  # skimage's L2-Hys epsilon
CLIP = 0.2  # L2-Hys clipping (Dalal & Triggs; skimage)


def hog_grid(height: int, width: int, pixels_per_cell: int, cells_per_block: int):
  """(cell rows, cell columns, block rows, block columns) of a height x width image.

  Raises:
    ValueError: when the image holds fewer cells than one block.
  """
  rows, cols = height // pixels_per_cell, width // pixels_per_cell
  if min(rows, cols) < cells_per_block or cells_per_block < 1 or pixels_per_cell < 1:
    raise ValueError(
      f"HOG: a {height} x {width} image has {rows} x {cols} cells of {pixels_per_cell} px; "
      f"a block needs {cells_per_block} x {cells_per_block} cells (config.model.bridging "
      "pixels_per_cell / cells_per_block, or a larger config.input_size)."
    )
  return rows, cols, rows - cells_per_block + 1, cols - cells_per_block + 1


def hog_dim(
  height: int, width: int, orientations: int, pixels_per_cell: int, cells_per_block: int
) -> int:
  """Length of the HOG vector of a height x width image."""
  _, _, brows, bcols = hog_grid(height, width, pixels_per_cell, cells_per_block)
  return brows * bcols * cells_per_block * cells_per_block * orientations


def cell_histograms(grey: jax.Array, orientations: int, pixels_per_cell: int) -> jax.Array:
  """Steps 1-3 of the module docstring: [B, H, W] -> [B, cell rows, cell cols, bins]."""
  x = grey.astype(jnp.float32)
  g_row = jnp.zeros_like(x).at[:, 1:-1, :].set(x[:, 2:, :] - x[:, :-2, :])
  g_col = jnp.zeros_like(x).at[:, :, 1:-1].set(x[:, :, 2:] - x[:, :, :-2])
  magnitude = jnp.hypot(g_col, g_row)
  orientation = jnp.rad2deg(jnp.arctan2(g_row, g_col)) % 180.0
  c = pixels_per_cell
  rows, cols = x.shape[1] // c, x.shape[2] // c
  magnitude = magnitude[:, : rows * c, : cols * c]
  orientation = orientation[:, : rows * c, : cols * c]
  # Bin edges as skimage compares them: bin i holds [i * w, (i + 1) * w), w = 180 / bins.
  edges = (180.0 / orientations) * jnp.arange(orientations + 1, dtype=jnp.float32)
  o = orientation[..., None]
  onehot = (o >= edges[:-1]) & (o < edges[1:])
  weighted = jnp.where(onehot, magnitude[..., None], 0.0)
  b = x.shape[0]
  cells = weighted.reshape(b, rows, c, cols, c, orientations).sum(axis=(2, 4))
  return cells / float(c * c)


def normalize_blocks(cells: jax.Array, cells_per_block: int) -> jax.Array:
  """Steps 4-5: [B, cell rows, cell cols, bins] -> [B, D] L2-Hys block features."""
  k = cells_per_block
  b, rows, cols, bins = cells.shape
  brows, bcols = rows - k + 1, cols - k + 1
  parts = [cells[:, i : i + brows, j : j + bcols] for i in range(k) for j in range(k)]
  blocks = jnp.stack(parts, axis=3).reshape(b, brows, bcols, k * k * bins)
  out = blocks / jnp.sqrt(jnp.sum(blocks**2, -1, keepdims=True) + EPS**2)
  out = jnp.minimum(out, CLIP)
  out = out / jnp.sqrt(jnp.sum(out**2, -1, keepdims=True) + EPS**2)
  return out.reshape(b, -1)


def hog(
  grey: jax.Array, orientations: int = 9, pixels_per_cell: int = 8, cells_per_block: int = 2
) -> jax.Array:
  """HOG features of a batch of grey images (module docstring).

  Args:
    grey: [B, H, W] float images (any affine intensity scale: the block normalisation
      removes it up to the tiny eps).
    orientations: unsigned orientation bins over 180 degrees.
    pixels_per_cell: cell side in pixels.
    cells_per_block: block side in cells.

  Returns:
    float32 [B, hog_dim(H, W, ...)].
  """
  if grey.ndim != 3:
    raise ValueError(f"hog expects grey images [B, H, W]; got shape {grey.shape}.")
  hog_grid(grey.shape[1], grey.shape[2], pixels_per_cell, cells_per_block)
  return normalize_blocks(cell_histograms(grey, orientations, pixels_per_cell), cells_per_block)


def template_distances(feats: jax.Array, templates: jax.Array) -> jax.Array:
  """L2 distances [B, K] of HOG vectors [B, D] to templates [K, D] (docs/papers.md 3.3
  step 4), as sqrt(|f|^2 + |t|^2 - 2 f.t) clamped at 0: one matrix product instead of a
  [B, K, D] difference; HOG vectors have norms of a few units, so float32 keeps ~1e-6."""
  f = feats.astype(jnp.float32)
  t = templates.astype(jnp.float32)
  sq = jnp.sum(f**2, -1)[:, None] + jnp.sum(t**2, -1)[None, :] - 2.0 * f @ t.T
  return jnp.sqrt(jnp.maximum(sq, 0.0))
