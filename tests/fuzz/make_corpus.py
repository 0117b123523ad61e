"""Writes the committed fuzz corpus (tests/fuzz/images, tests/fuzz/annotations) again,
byte for byte (every random choice is seeded). The corpus is committed so that the cases do
not depend on the Pillow version that writes them; this script documents how each file
was made and recreates it:

  .venv/bin/python tests/fuzz/make_corpus.py

The expected outcome of every file, and the other cases (configs, batches, workdirs, a
full disk), are in tests/fuzz/cases.json; tests/test_fuzz_corpus.py runs them.
"""

from __future__ import annotations

import io
import os
import struct
import zlib

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
RNG = np.random.default_rng(1234)


def _face(h=48, w=40) -> np.ndarray:
  """A smooth RGB test picture (not random noise: compresses like a photograph)."""
  y, x = np.mgrid[0:h, 0:w]
  return np.stack([x * 255 // w, y * 255 // h, (x + y) * 255 // (w + h)], -1).astype(np.uint8)


def _encode(im: Image.Image, fmt: str, **kw) -> bytes:
  buf = io.BytesIO()
  im.save(buf, fmt, **kw)
  return buf.getvalue()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
  return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def images() -> dict:
  rgb = Image.fromarray(_face())
  jpeg = _encode(rgb, "JPEG", quality=90)
  png = _encode(rgb, "PNG")
  # flipped bytes inside the IDAT chunk (after the 8-byte signature and the 25-byte IHDR)
  idat = png.index(b"IDAT")
  corrupt_png = bytearray(png)
  for i in range(idat + 10, idat + 26):
    corrupt_png[i] ^= 0xFF
  # A PNG whose header declares 20000 x 20000 pixels (400 MP, over Pillow's
  # decompression-bomb limit) with a tiny data chunk: opened, never decodable.
  ihdr = struct.pack(">IIBBBBB", 20000, 20000, 8, 0, 0, 0, 0)
  bomb = b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr)
  bomb += _png_chunk(b"IDAT", zlib.compress(b"\x00" * 1000)) + _png_chunk(b"IEND", b"")
  exif = Image.Exif()
  exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
  gif_frames = [Image.fromarray(_face()).convert("P"), Image.fromarray(255 - _face()).convert("P")]
  gif = io.BytesIO()
  gif_frames[0].save(gif, "GIF", save_all=True, append_images=gif_frames[1:], duration=100)
  rgba = np.concatenate([_face(), np.full((48, 40, 1), 128, np.uint8)], -1)
  palette = Image.fromarray(_face()).convert("P")
  palette.info["transparency"] = 0
  return {
    "good_rgb.png": png,
    "good.jpg": jpeg,
    "empty.jpg": b"",
    "random_bytes.jpg": RNG.integers(0, 256, 512, dtype=np.uint8).tobytes(),
    "text_named.png": b"this is a text file, not a PNG\n",
    "truncated.jpg": jpeg[: len(jpeg) // 2],
    "truncated.png": png[: len(png) // 2],
    "corrupt_idat.png": bytes(corrupt_png),
    "bomb_20000x20000.png": bomb,
    "large_3000x2000.png": _encode(Image.new("RGB", (3000, 2000), (40, 90, 160)), "PNG"),
    "gray16.png": _encode(
      Image.fromarray((np.arange(48 * 40).reshape(48, 40) * 30).astype(np.uint16)), "PNG"
    ),
    "cmyk.jpg": _encode(rgb.convert("CMYK"), "JPEG"),
    "rgba.png": _encode(Image.fromarray(rgba, "RGBA"), "PNG"),
    "palette_transparent.png": _encode(palette, "PNG"),
    "animated.gif": gif.getvalue(),
    "float32.tif": _encode(Image.fromarray(_face()[:, :, 0].astype(np.float32) / 255.0), "TIFF"),
    "bilevel.png": _encode(rgb.convert("1"), "PNG"),
    "tiny_4x4.png": _encode(Image.fromarray(_face(4, 4)), "PNG"),
    "thin_300x2.png": _encode(Image.fromarray(_face(2, 300)), "PNG"),
    "png_named.jpg": png,
    "exif_rotated.jpg": _encode(rgb, "JPEG", exif=exif.tobytes()),
  }


PTS_OK = (
  "version: 1\nn_points: 68\n{\n" + "".join(f"{10 + i}.5 {20 + i}.25\n" for i in range(68)) + "}\n"
)

ANNOTATIONS = {
  # iBUG .pts (300-W, HELEN): w300.parse_pts
  "ok.pts": PTS_OK,
  "truncated.pts": PTS_OK[: PTS_OK.index("40.5")],
  "wrong_count.pts": PTS_OK.replace("n_points: 68", "n_points: 67"),
  "not_a_number.pts": PTS_OK.replace("15.5 25.25", "15.5 abc"),
  "no_header.pts": "{\n1 2\n}\n",
  "empty.pts": "",
  # FDDB ellipse lists: fddb.parse_ellipse_list
  "fddb_ok.txt": "2002/07/19/big/img_1\n1\n30.0 20.0 1.2 50.0 60.0 1\n",
  "fddb_truncated.txt": "2002/07/19/big/img_1\n3\n30.0 20.0 1.2 50.0 60.0 1\n",
  "fddb_negative_count.txt": "2002/07/19/big/img_1\n-1\n",
  "fddb_count_not_a_number.txt": "2002/07/19/big/img_1\nthree\n",
  "fddb_zero_radius.txt": "2002/07/19/big/img_1\n1\n0.0 20.0 1.2 50.0 60.0 1\n",
  "fddb_missing_field.txt": "2002/07/19/big/img_1\n1\n30.0 20.0 1.2 50.0\n",
  "fddb_no_count.txt": "2002/07/19/big/img_1\n",
  # MTFL training.txt rows: mtfl.parse_line
  "mtfl_ok.txt": " lfw_5590\\a.jpg 1 2 3 4 5 6 7 8 9 10 1 2 2 3\n",
  "mtfl_short_row.txt": " lfw_5590\\a.jpg 1 2 3 4 5 6 7 8 9 10 1 2 2\n",
  "mtfl_bad_gender.txt": " lfw_5590\\a.jpg 1 2 3 4 5 6 7 8 9 10 3 2 2 3\n",
  "mtfl_bad_coordinate.txt": " lfw_5590\\a.jpg 1 2 x 4 5 6 7 8 9 10 1 2 2 3\n",
  # CelebA list_landmarks_align_celeba.txt: celeba_lists.read_landmarks
  "celeba_landmarks_ok.txt": "1\nlefteye_x lefteye_y righteye_x righteye_y nose_x nose_y "
  "leftmouth_x leftmouth_y rightmouth_x rightmouth_y\n000001.jpg 69 109 106 113 77 142 73 152 "
  "108 154\n",
  "celeba_landmarks_count_mismatch.txt": "3\nlefteye_x lefteye_y righteye_x righteye_y nose_x "
  "nose_y leftmouth_x leftmouth_y rightmouth_x rightmouth_y\n000001.jpg 69 109 106 113 77 142 "
  "73 152 108 154\n",
  "celeba_landmarks_wrong_header.txt": "1\nx y\n000001.jpg 69 109 106 113 77 142 73 152 108 154\n",
  "celeba_landmarks_duplicate.txt": "2\nlefteye_x lefteye_y righteye_x righteye_y nose_x nose_y "
  "leftmouth_x leftmouth_y rightmouth_x rightmouth_y\n000001.jpg 69 109 106 113 77 142 73 152 "
  "108 154\n000001.jpg 69 109 106 113 77 142 73 152 108 154\n",
  "celeba_landmarks_nan.txt": "1\nlefteye_x lefteye_y righteye_x righteye_y nose_x nose_y "
  "leftmouth_x leftmouth_y rightmouth_x rightmouth_y\n000001.jpg 69 nan 106 113 77 142 73 152 "
  "108 154\n",
  "celeba_landmarks_truncated.txt": "1\nlefteye_x lefteye_y",
}


def main() -> None:
  for folder, files in (("images", images()), ("annotations", ANNOTATIONS)):
    os.makedirs(os.path.join(HERE, folder), exist_ok=True)
    for name, content in files.items():
      data = content.encode() if isinstance(content, str) else content
      with open(os.path.join(HERE, folder, name), "wb") as f:
        f.write(data)
  print(f"wrote {len(images())} images and {len(ANNOTATIONS)} annotation files under {HERE}")


if __name__ == "__main__":
  main()
