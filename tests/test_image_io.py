"""Every odd or bad image file the predict CLI may meet (inference/image_io.py)."""

import io

import cv2
import numpy as np
import pytest
from PIL import Image, ImageFile

from hyperface_jax.inference import image_io


def _blocks(h=32, w=48):
  """An RGB image of 16x16 uniform blocks of distinct colours (JPEG-friendly)."""
  rng = np.random.default_rng(0)
  colours = rng.integers(0, 256, size=(h // 16, w // 16, 3), dtype=np.uint8)
  return np.kron(colours, np.ones((16, 16, 1), np.uint8))


def test_rgb_png_round_trip_without_notes(tmp_path):
  image = np.random.default_rng(1).integers(0, 256, (20, 30, 3), dtype=np.uint8)
  Image.fromarray(image).save(tmp_path / "a.png")
  out, notes = image_io.read_image(tmp_path / "a.png")
  np.testing.assert_array_equal(out, image)
  assert notes == [] and out.flags.c_contiguous and out.flags.writeable


def test_grayscale_is_repeated_in_three_channels(tmp_path):
  gray = np.arange(200, dtype=np.uint8).reshape(10, 20)
  Image.fromarray(gray, "L").save(tmp_path / "g.png")
  out, notes = image_io.read_image(tmp_path / "g.png")
  assert out.shape == (10, 20, 3)
  for c in range(3):
    np.testing.assert_array_equal(out[:, :, c], gray)
  assert notes == ["grayscale (L) -> RGB"]


def test_rgba_is_composited_on_white(tmp_path):
  rgba = np.zeros((2, 2, 4), np.uint8)
  rgba[0, 0] = (200, 100, 0, 255)  # opaque: unchanged
  rgba[0, 1] = (0, 0, 0, 0)  # transparent black: white
  rgba[1, 0] = (100, 50, 0, 128)  # half: by hand (100*128 + 255*127 + 127) // 255 = 177
  rgba[1, 1] = (10, 20, 30, 51)
  Image.fromarray(rgba, "RGBA").save(tmp_path / "t.png")
  out, notes = image_io.read_image(tmp_path / "t.png")
  assert tuple(out[0, 0]) == (200, 100, 0)
  assert tuple(out[0, 1]) == (255, 255, 255)
  assert tuple(out[1, 0]) == (177, 152, 127)  # 50: (6400+32385+127)//255=152; 0: 127
  expected = [round((v * 51 + 255 * 204) / 255) for v in (10, 20, 30)]
  assert list(out[1, 1]) == expected
  assert notes == ["alpha (RGBA) composited on white"]


def test_palette_with_transparency(tmp_path):
  im = Image.new("P", (4, 2), 0)
  im.putpalette([255, 0, 0, 0, 0, 255] + [0] * (256 * 3 - 6))
  im.putpixel((3, 1), 1)
  im.info["transparency"] = 0  # index 0 (red) is transparent
  im.save(tmp_path / "p.png", transparency=0)
  out, notes = image_io.read_image(tmp_path / "p.png")
  assert tuple(out[0, 0]) == (255, 255, 255) and tuple(out[1, 3]) == (0, 0, 255)
  assert notes[0] == "palette -> RGB with alpha"


def test_16_bit_gray_and_rgb_png_keep_the_top_8_bits(tmp_path):
  gray16 = np.array([[0, 255, 256, 65535], [4660, 32768, 511, 1000]], np.uint16)
  cv2.imwrite(str(tmp_path / "g16.png"), gray16)
  out, notes = image_io.read_image(tmp_path / "g16.png")
  np.testing.assert_array_equal(out[:, :, 0], [[0, 0, 1, 255], [18, 128, 1, 3]])
  assert "8 bits (>> 8)" in notes[0]
  rgb16 = np.zeros((2, 3, 3), np.uint16)
  rgb16[..., 0], rgb16[..., 1], rgb16[..., 2] = 0x1234, 0xFF00, 0x00FF
  cv2.imwrite(str(tmp_path / "c16.png"), rgb16[:, :, ::-1])  # cv2 writes BGR
  out, _ = image_io.read_image(tmp_path / "c16.png")
  assert out.dtype == np.uint8 and tuple(out[1, 2]) == (0x12, 0xFF, 0x00)


@pytest.mark.parametrize(
  "orientation,expected",
  [
    (1, lambda a: a),
    (2, lambda a: a[:, ::-1]),  # mirrored horizontally
    (3, lambda a: a[::-1, ::-1]),  # rotated 180
    (6, lambda a: np.rot90(a, k=-1)),  # stored rotated; shown turned 90 deg clockwise
    (8, lambda a: np.rot90(a, k=1)),  # shown turned 90 deg counter-clockwise
  ],
)
def test_exif_orientation_is_applied_pixel_exact(tmp_path, orientation, expected):
  stored = _blocks()
  exif = Image.Exif()
  exif[0x0112] = orientation
  path = tmp_path / f"o{orientation}.jpg"
  Image.fromarray(stored).save(path, quality=100, subsampling=0, exif=exif)
  with Image.open(path) as im:  # the stored grid, decoded without any transpose
    decoded = np.asarray(im.convert("RGB"))
  out, notes = image_io.read_image(path)
  np.testing.assert_array_equal(out, expected(decoded))
  assert np.abs(decoded.astype(int) - stored).max() <= 3  # quality 100, blocks: ~lossless
  if orientation == 6:  # by hand: the stored top-left block ends at the top-right
    assert out.shape == (48, 32, 3)
    assert np.abs(out[0, -1].astype(int) - stored[0, 0]).max() <= 3
    assert notes == ["EXIF orientation 6 applied"]


def test_truncated_jpeg_is_an_error_even_if_pillow_allows_truncation(tmp_path, monkeypatch):
  buf = io.BytesIO()
  Image.fromarray(_blocks(64, 64)).save(buf, "JPEG", quality=90)
  data = buf.getvalue()
  (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
  with pytest.raises(image_io.ImageReadError, match=r"cut\.jpg: truncated"):
    image_io.read_image(tmp_path / "cut.jpg")
  monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)  # some other library did this
  with pytest.raises(image_io.ImageReadError, match="truncated"):
    image_io.read_image(tmp_path / "cut.jpg")
  assert ImageFile.LOAD_TRUNCATED_IMAGES is True  # restored


def test_missing_non_image_empty_and_directory_inputs(tmp_path):
  (tmp_path / "notes.txt").write_text("not an image")
  (tmp_path / "empty.png").write_bytes(b"")
  (tmp_path / "fake.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\x00" * 20)
  cases = [
    ("missing.png", "no such file"),
    ("notes.txt", "not an image file"),
    ("empty.png", "not an image file"),
    ("fake.jpg", "fake.jpg: "),
    (".", "not a regular"),
  ]
  for name, message in cases:
    with pytest.raises(image_io.ImageReadError, match=message) as err:
      image_io.read_image(tmp_path / name)
    assert str(tmp_path) in str(err.value)


def test_decompression_bomb_is_too_large(tmp_path, monkeypatch):
  Image.fromarray(np.zeros((100, 100, 3), np.uint8)).save(tmp_path / "big.png")
  monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 10 000 px > 2 x 1000
  with pytest.raises(image_io.ImageTooLarge, match="big.png: image too large"):
    image_io.read_image(tmp_path / "big.png")


def test_large_image_is_downscaled_and_coordinates_map_back():
  image = np.zeros((1500, 3000, 3), np.uint8)
  fitted = image_io.fit_to_network(image, min_side=99, max_side=1000)
  assert fitted.pixels.shape == (500, 1000, 3) and fitted.original_size == (1500, 3000)
  assert fitted.scale_xy == (1 / 3, 1 / 3)
  # Pixel centres: fitted pixel 0 covers original pixels 0..2, centre 1.
  np.testing.assert_allclose(
    image_io.points_to_original([[0.0, 0.0], [10.0, 2.0]], fitted.scale_xy),
    [[1.0, 1.0], [31.0, 7.0]],
  )
  np.testing.assert_allclose(
    image_io.box_to_original([10, 2, 20, 5], fitted.scale_xy), [31.0, 7.0, 60.0, 15.0]
  )


def test_small_image_is_upscaled_to_the_model_input_and_tiny_one_rejected():
  image = np.full((20, 40, 3), 7, np.uint8)
  fitted = image_io.fit_to_network(image, min_side=99, max_side=1024)
  assert fitted.pixels.shape == (99, 198, 3) and fitted.resized
  assert fitted.scale_xy == (198 / 40, 99 / 20)
  np.testing.assert_allclose(
    image_io.points_to_original([[98.5, 49.0]], fitted.scale_xy),
    [[(99.0 / 4.95) - 0.5, (49.5 / 4.95) - 0.5]],
  )
  same = image_io.fit_to_network(np.zeros((200, 300, 3), np.uint8), min_side=99)
  assert not same.resized and same.pixels.shape == (200, 300, 3)
  with pytest.raises(image_io.ImageTooSmall, match="x.png: image of 5x7 px is too small"):
    image_io.fit_to_network(np.zeros((7, 5, 3), np.uint8), 99, name="x.png")
  with pytest.raises(image_io.ImageTooSmall, match="too elongated"):
    image_io.fit_to_network(np.zeros((10, 4000, 3), np.uint8), 99, max_side=1000)


def test_cmyk_jpeg_and_multiframe_gif(tmp_path):
  Image.new("CMYK", (8, 8), (0, 255, 255, 0)).save(tmp_path / "c.jpg")  # pure red
  out, notes = image_io.read_image(tmp_path / "c.jpg")
  assert out[4, 4, 0] > 240 and out[4, 4, 1:].max() < 15 and "CMYK" in notes[0]
  frames = [Image.new("RGB", (8, 8), c) for c in ((0, 0, 255), (255, 0, 0))]
  frames[0].save(tmp_path / "m.gif", save_all=True, append_images=frames[1:])
  out, notes = image_io.read_image(tmp_path / "m.gif")
  assert tuple(out[0, 0]) == (0, 0, 255) and notes[0] == "first of 2 frames"


def test_broken_exif_block_keeps_the_image(tmp_path, monkeypatch):
  stored = _blocks()
  Image.fromarray(stored).save(tmp_path / "e.png")

  def broken(_):
    raise SyntaxError("not a TIFF file")  # what a corrupt EXIF block raises in Pillow

  monkeypatch.setattr(image_io.ImageOps, "exif_transpose", broken)
  out, notes = image_io.read_image(tmp_path / "e.png")
  np.testing.assert_array_equal(out, stored)
  assert notes == ["EXIF unreadable, orientation not applied (SyntaxError)"]
