"""Reading any image file for inference, and fitting it to the network's size range.

`read_image(path)` returns RGB uint8 [H, W, 3] (docs/design.md section 6) and the list of the
conversions it applied. The rules (documented defaults):
  * EXIF orientation is APPLIED (`PIL.ImageOps.exif_transpose`): a phone photo comes out the
    way a viewer shows it, and every output coordinate refers to that upright grid. (Dataset
    builders do the opposite, `data.builders.manual.decode_image`: annotations refer to the
    stored grid.)
  * grayscale (L, 1-bit) -> the gray value repeated in R, G, B;
  * RGBA / LA / palette with transparency -> composited on WHITE, rounded:
    out = (rgb * a + 255 * (255 - a)) / 255. Transparent parts of a PNG are usually stored
    as black (or garbage) RGB; a viewer shows them on a light background, and a face
    detector should see what a person sees, not the hidden colour.
  * 16 bits per channel -> the top 8 bits (v >> 8), independent of the image's content
    (as `manual.to_rgb_uint8`); 32-bit integer -> clipped to [0, 65535], then >> 8;
    float ("F") -> clipped to [0, 1] x 255;
  * palette, CMYK, YCbCr, LAB, HSV, ... -> Pillow's conversion to RGB;
  * multi-frame files (GIF, TIFF) -> the first frame.
Errors are `ImageReadError` (a ValueError) naming the file and what was wrong: a missing or
unreadable file, a file that is not an image, a truncated file (Pillow raises only when the
full image is decoded, so it is always fully decoded here, with Pillow's
LOAD_TRUNCATED_IMAGES forced off), and an image over Pillow's decompression-bomb limit
(`ImageTooLarge`, > 2 * PIL.Image.MAX_IMAGE_PIXELS, about 179 megapixels).

`fit_to_network(image, min_side, max_side)` then gives the network a size it can work with:
  * shorter side < MIN_IMAGE_SIDE (8 px) -> `ImageTooSmall` (no face can be found in it);
  * longer side > max_side (default 1024 px, close to TK's 999 px, docs/papers.md section 1.8)
    -> downscaled (cv2.INTER_AREA) so that the longer side is max_side;
  * shorter side < min_side (the model's input size, e.g. 99 or 227 px) -> upscaled
    (cv2.INTER_LINEAR) so that the shorter side is min_side (or the longer side max_side,
    whichever comes first): a face filling a small image is then seen at the network's
    native crop size.
Coordinates predicted on the fitted image map back to the original pixels with
`points_to_original` / `box_to_original` (pixel centres, as cv2.resize: x_orig =
(x + 0.5) / sx - 0.5).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from typing import List, Tuple

import cv2
import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

MIN_IMAGE_SIDE = 8  # documented default: below this no face can be detected
# File extensions Pillow can open (used to pick the images of a folder; a single file is
# always tried whatever its name).
IMAGE_EXTENSIONS = frozenset(
  ext for ext, fmt in Image.registered_extensions().items() if fmt in Image.OPEN
)
DEFAULT_MAX_SIDE = 1024  # documented default (TK downscales to <= 999 px, docs/papers.md 1.8)


class ImageReadError(ValueError):
  """An image file that cannot be used; the message names the file and the reason."""

  def __init__(self, path, reason: str):
    self.path, self.reason = os.fspath(path), reason
    super().__init__(f"{self.path}: {reason}")


class ImageTooSmall(ImageReadError):
  """An image whose shorter side is below MIN_IMAGE_SIDE pixels."""


class ImageTooLarge(ImageReadError):
  """An image over Pillow's decompression-bomb limit."""


@contextlib.contextmanager
def _truncated_images_rejected():
  """Forces Pillow to raise on truncated data even if other code allowed it globally."""
  saved = ImageFile.LOAD_TRUNCATED_IMAGES
  ImageFile.LOAD_TRUNCATED_IMAGES = False
  try:
    yield
  finally:
    ImageFile.LOAD_TRUNCATED_IMAGES = saved


def is_image_name(path) -> bool:
  """Whether the file name has an extension Pillow can open (case-insensitive)."""
  return os.path.splitext(os.fspath(path))[1].lower() in IMAGE_EXTENSIONS


def composite_on_white(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
  """(rgb * a + 255 * (255 - a)) / 255, rounded, for uint8 rgb [H, W, 3] and alpha [H, W]."""
  a = alpha.astype(np.uint32)[:, :, None]
  out = (rgb.astype(np.uint32) * a + 255 * (255 - a) + 127) // 255
  return out.astype(np.uint8)


def _to_rgb(im: Image.Image, notes: List[str]) -> np.ndarray:
  """Pillow image (any mode) -> RGB uint8 by the rules of the module doc."""
  mode = im.mode
  if mode == "RGB":
    return np.array(im)
  if mode in ("L", "1"):
    notes.append(f"grayscale ({mode}) -> RGB")
    return np.repeat(np.asarray(im.convert("L"))[:, :, None], 3, axis=2)
  if mode.startswith("I;16") or mode == "I":
    arr = np.asarray(im).astype(np.int64)
    notes.append(f"{'16' if mode != 'I' else '32'}-bit grayscale ({mode}) -> 8 bits (>> 8)")
    gray = (np.clip(arr, 0, 65535) >> 8).astype(np.uint8)
    return np.repeat(gray[:, :, None], 3, axis=2)
  if mode == "F":
    notes.append("float grayscale (F) -> clipped to [0, 1] x 255")
    gray = np.round(np.clip(np.asarray(im), 0.0, 1.0) * 255.0).astype(np.uint8)
    return np.repeat(gray[:, :, None], 3, axis=2)
  if mode == "P":
    has_alpha = "transparency" in im.info or im.palette.mode == "RGBA"
    notes.append("palette -> RGB" + (" with alpha" if has_alpha else ""))
    im, mode = im.convert("RGBA" if has_alpha else "RGB"), ("RGBA" if has_alpha else "RGB")
    if mode == "RGB":
      return np.array(im)
  if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
    notes.append(f"alpha ({mode}) composited on white")
    rgba = np.asarray(im.convert("RGBA"))
    return composite_on_white(rgba[:, :, :3], rgba[:, :, 3])
  notes.append(f"{mode} -> RGB (Pillow conversion)")
  return np.array(im.convert("RGB"))


def read_image(path) -> Tuple[np.ndarray, List[str]]:
  """Reads an image file to RGB uint8 [H, W, 3], upright (EXIF orientation applied).

  Args:
    path: the file.

  Returns:
    (image, notes): notes list the conversions applied, e.g. "EXIF orientation 6 applied".

  Raises:
    ImageReadError (or its ImageTooLarge subclass) naming the file and the reason.
  """
  notes: List[str] = []
  if not os.path.exists(path):
    raise ImageReadError(path, "no such file")
  if not os.path.isfile(path):
    raise ImageReadError(path, "not a regular file")
  try:
    with Image.open(path) as im, _truncated_images_rejected():
      if getattr(im, "n_frames", 1) > 1:
        notes.append(f"first of {im.n_frames} frames")
      im.load()  # full decode: the only way Pillow notices a truncated file
      try:
        orientation = im.getexif().get(0x0112, 1)  # EXIF tag 274 "Orientation"
        upright = ImageOps.exif_transpose(im)
      except Exception as e:  # pylint: disable=broad-except  (a broken EXIF block only)
        orientation, upright = 1, im
        notes.append(f"EXIF unreadable, orientation not applied ({type(e).__name__})")
      if orientation in range(2, 9):  # 1 = upright; other values are invalid, ignored
        notes.append(f"EXIF orientation {orientation} applied")
      image = _to_rgb(upright, notes)
  except Image.DecompressionBombError as e:
    raise ImageTooLarge(path, f"image too large to decode safely ({e})") from None
  except UnidentifiedImageError:
    raise ImageReadError(path, "not an image file (format not recognised by Pillow)") from None
  except (OSError, SyntaxError, ValueError) as e:
    message = str(e)
    if "truncated" in message.lower():
      raise ImageReadError(path, f"truncated or corrupt image data ({message})") from None
    raise ImageReadError(path, f"cannot decode the image ({type(e).__name__}: {message})") from None
  if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
    raise ImageReadError(path, f"unexpected decoded array {image.dtype} {image.shape}")
  return np.ascontiguousarray(image), notes


@dataclasses.dataclass(frozen=True)
class FittedImage:
  """An image resized for the network, and how to map its coordinates back.

  Attributes:
    pixels: RGB uint8 [h, w, 3], what the network sees.
    original_size: (H, W) of the upright original.
    scale_xy: (w / W, h / H): fitted pixels per original pixel along x and y.
  """

  pixels: np.ndarray
  original_size: Tuple[int, int]
  scale_xy: Tuple[float, float]

  @property
  def resized(self) -> bool:
    return self.scale_xy != (1.0, 1.0)


def fit_to_network(
  image: np.ndarray, min_side: int = 0, max_side: int = DEFAULT_MAX_SIDE, name: str = "<image>"
) -> FittedImage:
  """Resizes `image` into the network's range (rules in the module doc).

  Args:
    image: RGB uint8 [H, W, 3].
    min_side: upscale until the shorter side is at least this (0: never upscale).
    max_side: downscale until the longer side is at most this.
    name: the file name used in error messages.

  Returns:
    The FittedImage.

  Raises:
    ImageTooSmall: the shorter side is below MIN_IMAGE_SIDE, before or after fitting.
  """
  h, w = image.shape[:2]
  if min(h, w) < MIN_IMAGE_SIDE:
    raise ImageTooSmall(
      name,
      f"image of {w}x{h} px is too small: the shorter side must be "
      f"at least {MIN_IMAGE_SIDE} px to hold a detectable face",
    )
  scale = 1.0
  if max(h, w) > max_side:
    scale = max_side / max(h, w)
  elif min(h, w) < min_side:
    scale = min(min_side / min(h, w), max_side / max(h, w))
  if scale == 1.0:
    return FittedImage(image, (h, w), (1.0, 1.0))
  new_w, new_h = max(1, int(round(w * scale))), max(1, int(round(h * scale)))
  if min(new_w, new_h) < MIN_IMAGE_SIDE:
    raise ImageTooSmall(
      name,
      f"image of {w}x{h} px is too elongated: fitting its longer "
      f"side to {max_side} px leaves {min(new_w, new_h)} px (< "
      f"{MIN_IMAGE_SIDE})",
    )
  interpolation = cv2.INTER_AREA if scale < 1.0 else cv2.INTER_LINEAR
  pixels = cv2.resize(image, (new_w, new_h), interpolation=interpolation)
  return FittedImage(pixels, (h, w), (new_w / w, new_h / h))


def points_to_original(points, scale_xy) -> np.ndarray:
  """[..., 2] pixel points on the fitted image -> original pixels (pixel-centre mapping)."""
  s = np.asarray(scale_xy, np.float64)
  return (np.asarray(points, np.float64) + 0.5) / s - 0.5


def box_to_original(box, scale_xy) -> np.ndarray:
  """[x, y, w, h] on the fitted image -> original pixels."""
  box = np.asarray(box, np.float64)
  s = np.asarray(scale_xy, np.float64)
  return np.concatenate([points_to_original(box[:2], s), box[2:] / s])
