"""Caffe -> Flax conversion against fixture caffemodels and NumPy Caffe forward passes."""

import caffe_fixture as cf  # tests/ is on sys.path under pytest
import jax
import numpy as np
import pytest

from hyperface_jax.convert import ConversionError, convert_file, load_converted
from hyperface_jax.convert.caffe_proto import read_caffemodel
from hyperface_jax.data import preprocess


def test_wire_format_reader_decodes_hand_encoded_blobs(tmp_path):
  legacy = np.arange(6, dtype=np.float32).reshape(2, 3)
  shaped = np.arange(24, dtype=np.float32).reshape(2, 3, 4) - 7.5
  net = cf.v1_layer("fc", 14, [legacy], bottom=["a"], top=["b"]) + cf.v1_layer("relu", 18)
  net += cf.layer("bn", "BatchNorm", [shaped, np.array([2.5])])
  path = tmp_path / "tiny.caffemodel"
  path.write_bytes(cf.string(1, "tiny") + net)
  layers = read_caffemodel(str(path))
  # New-format `layer` entries first, then legacy `layers` (file order within each).
  assert [(x.name, x.type, len(x.blobs)) for x in layers] == [
    ("bn", "BatchNorm", 2),
    ("fc", "InnerProduct", 1),
    ("relu", "ReLU", 0),
  ]
  np.testing.assert_array_equal(layers[0].blobs[0], shaped)
  np.testing.assert_array_equal(layers[0].blobs[1], [2.5])
  np.testing.assert_array_equal(layers[1].blobs[0], legacy.reshape(1, 1, 2, 3))
  assert cf.varint(300) == bytes([0xAC, 0x02])  # the protobuf docs' example
  bad = tmp_path / "bad.caffemodel"
  bad.write_bytes(b"\xff\xff\xff")
  with pytest.raises(ValueError, match="bad.caffemodel is not a Caffe NetParameter"):
    read_caffemodel(str(bad))


@pytest.mark.parametrize("lrn_first", [True, False], ids=["bvlc_alexnet", "caffenet"])
def test_grouped_alexnet_matches_numpy(tmp_path, lrn_first):
  rng = np.random.default_rng(1)
  payload, weights = cf.alexnet(rng, lrn_first=lrn_first)
  path = tmp_path / "alexnet.caffemodel"
  path.write_bytes(payload)
  meta = convert_file("caffe", "alexnet", str(path), str(tmp_path / "out"))
  assert meta["model"] == dict(
    conv_channels=[8, 16, 24, 24, 16],
    conv_groups=2,
    lrn=True,
    lrn_before_pool=lrn_first,
    hidden=[32, 32],
    num_classes=10,
  )
  assert meta["normalization"] == dict(
    channel_order="BGR",
    input_range=[0.0, 255.0],
    mean=[104.00698793, 116.66876762, 122.67891434],  # BVLC ILSVRC-2012 mean, B, G, R
    std=[1.0, 1.0, 1.0],
    preprocess_mode="caffe_bgr",
  )
  assert meta["report"]["ignored"]["relu1"] == "ReLU layer without weights"
  model, variables = load_converted(str(tmp_path / "out"))
  assert variables["params"]["backbone"]["conv2"]["kernel"].shape == (5, 5, 4, 16)
  images = rng.integers(0, 256, (2, 227, 227, 3), dtype=np.uint8)
  x = preprocess.normalize(images, meta["normalization"]["preprocess_mode"])  # BGR - mean
  ref = cf.alexnet_forward(x.transpose(0, 3, 1, 2).astype(np.float64), weights, lrn_first)
  out = np.asarray(jax.jit(lambda v, im: model.apply(v, im))(variables, x))
  assert np.abs(ref).max() > 1.0
  np.testing.assert_allclose(out, ref, atol=1e-3, rtol=1e-4)


def test_resnet101_release_layout_matches_numpy(tmp_path):
  rng = np.random.default_rng(2)
  payload, layers = cf.resnet101(rng)
  path = tmp_path / "ResNet-101-model.caffemodel"
  path.write_bytes(payload)
  meta = convert_file("caffe", "resnet101", str(path), str(tmp_path / "out"))
  assert meta["model"] == dict(base_width=4, num_classes=10, stride_in_1x1=True, caffe_pool=True)
  report = meta["report"]
  assert report["mapped"]["bn4b22_branch2c/blob1"] == (
    "batch_stats/backbone/res4b22/bn_branch2c/var"
  )
  assert report["mapped"]["scale3a_branch1/blob0"] == "params/backbone/res3a/bn_branch1/scale"
  model, variables = load_converted(str(tmp_path / "out"))
  # BatchNorm blobs hold mean * factor; the converter divides the factor out.
  mean, _, factor = layers["bn2b_branch2a"][1]
  np.testing.assert_allclose(
    variables["batch_stats"]["backbone"]["res2b"]["bn_branch2a"]["mean"],
    mean / factor[0],
    rtol=1e-6,
  )
  x = rng.normal(size=(2, 64, 64, 3)).astype(np.float32) * 50
  ref = cf.resnet101_forward(x.transpose(0, 3, 1, 2).astype(np.float64), layers)
  apply = jax.jit(lambda v, im: model.apply(v, im))
  out = np.asarray(apply(variables, x))
  assert np.abs(ref).max() > 1.0
  np.testing.assert_allclose(out, ref, atol=1e-3, rtol=1e-4)
  # The reference is sensitive to the release's geometry: torchvision's differs.
  tv = type(model)(**dict(meta["model"], stride_in_1x1=False, caffe_pool=False))
  assert np.abs(np.asarray(jax.jit(lambda v, im: tv.apply(v, im))(variables, x)) - ref).max() > 0.1


def test_unknown_layer_and_wrong_blob_are_named(tmp_path):
  rng = np.random.default_rng(3)
  payload, weights = cf.alexnet(rng)
  path = tmp_path / "extra.caffemodel"
  path.write_bytes(payload + cf.v1_layer("fc9_extra", 14, [np.ones((2, 10)), np.ones(2)]))
  with pytest.raises(ConversionError, match=r"no place in the model: fc9_extra \(InnerProduct\)"):
    convert_file("caffe", "alexnet", str(path), str(tmp_path / "o1"))
  # conv3 with a 5x5 kernel: the error names the blob and the target variable.
  payload = payload.replace(
    cf.v1_layer("conv3", 4, weights["conv3"], ["x"], ["x"]),
    cf.v1_layer("conv3", 4, [np.ones((24, 16, 5, 5)), np.ones(24)], ["x"], ["x"]),
  )
  path.write_bytes(payload)
  with pytest.raises(
    ConversionError,
    match=r"conv3/blob0 -> params/backbone/conv3/kernel: got "
    r"\(5, 5, 16, 24\), expected \(3, 3, 16, 24\)",
  ):
    convert_file("caffe", "alexnet", str(path), str(tmp_path / "o2"))
  assert not (tmp_path / "o2").exists()


def test_recorded_normalization_is_what_its_preprocess_mode_computes():
  """converted.json's channel order, range, mean and std describe `preprocess_mode` exactly."""
  from hyperface_jax.convert.collect import NORMALISATION

  rgb = np.array([[[10, 128, 250], [0, 255, 77]]], np.uint8)
  for fmt, norm in NORMALISATION.items():
    x = rgb.astype(np.float64) * norm["input_range"][1] / 255.0
    if norm["channel_order"] == "BGR":
      x = x[..., ::-1]
    want = (x - np.array(norm["mean"])) / np.array(norm["std"])
    got = preprocess.normalize(rgb, norm["preprocess_mode"])
    np.testing.assert_allclose(got, want, atol=1e-4, err_msg=fmt)
