"""torchvision -> Flax conversion reproduces the PyTorch networks; bad state_dicts name keys."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch  # a hard test dependency: `make test` installs requirements-torch.lock
import torch_reference as tr  # tests/ is on sys.path under pytest

from hyperface_jax.convert import ConversionError, convert_file, load_converted
from hyperface_jax.convert.collect import dense_kernel


def convert_and_compare(tmp_path, arch, net, size, seed=0):
  """Converts a random-weight reference net, returns (max |logit diff|, max |logit|, meta)."""
  tr.randomise(net, seed)
  pth = tmp_path / f"{arch}.pth"
  torch.save(net.state_dict(), pth)
  out_dir = tmp_path / f"{arch}_flax"
  meta = convert_file("torchvision", arch, str(pth), str(out_dir))
  model, variables = load_converted(str(out_dir))
  x = np.random.default_rng(seed).normal(size=(2, 3, size, size)).astype(np.float32)
  with torch.no_grad():
    ref = net(torch.from_numpy(x)).numpy()
  apply = jax.jit(lambda v, im: model.apply(v, im, train=False))
  out = np.asarray(apply(variables, jnp.asarray(x.transpose(0, 2, 3, 1))))
  assert out.shape == ref.shape
  return float(np.abs(out - ref).max()), float(np.abs(ref).max()), meta


def test_alexnet_matches_torch_at_224_and_256(tmp_path):
  # Full conv widths; fc6/fc7 narrowed to 512 (same keys, 10x smaller file). At 256 the
  # pool5 map is 7x7, so torchvision's adaptive 6x6 average pool and the C,H,W -> H,W,C
  # permutation of fc6 are both exercised.
  net = tr.AlexNet(hidden=512)
  diff, scale, meta = convert_and_compare(tmp_path, "alexnet", net, 224)
  assert scale > 1.0 and diff < 1e-3
  assert meta["model_name"] == "alexnet_torchvision"
  assert meta["model"] == dict(
    conv_channels=[64, 192, 384, 256, 256], hidden=[512, 512], num_classes=1000
  )
  model, variables = load_converted(str(tmp_path / "alexnet_flax"))
  x = np.random.default_rng(5).normal(size=(1, 3, 256, 256)).astype(np.float32)
  with torch.no_grad():
    ref = net(torch.from_numpy(x)).numpy()
  out = jax.jit(lambda v, im: model.apply(v, im))(variables, x.transpose(0, 2, 3, 1))
  np.testing.assert_allclose(np.asarray(out), ref, atol=1e-3)


def test_resnet50_matches_torch(tmp_path):
  diff, scale, meta = convert_and_compare(tmp_path, "resnet50", tr.ResNet(50, width=16), 64)
  assert scale > 1.0 and diff < 1e-3
  report = meta["report"]
  # 53 convs + 53 BNs * 4 + fc weight, bias = 53 + 212 + 2 mapped, 53 counters ignored.
  assert len(report["mapped"]) == 267 and len(report["ignored"]) == 53
  assert report["mapped"]["layer1.0.downsample.0.weight"] == "params/backbone/res2a/branch1/kernel"
  assert (
    report["mapped"]["layer4.2.bn3.running_var"] == "batch_stats/backbone/res5c/bn_branch2c/var"
  )
  assert report["missing"] == [] and report["unexpected"] == []
  assert meta["normalization"] == dict(
    channel_order="RGB",
    input_range=[0.0, 1.0],
    mean=[0.485, 0.456, 0.406],
    std=[0.229, 0.224, 0.225],
    preprocess_mode="imagenet",
  )
  on_disk = json.loads((tmp_path / "resnet50_flax" / "converted.json").read_text())
  assert on_disk["source"]["file"] == "resnet50.pth" and len(on_disk["source"]["sha256"]) == 64
  with np.load(tmp_path / "resnet50_flax" / "variables.npz") as data:
    assert "params/backbone/conv1/kernel" in data.files
    assert data["params/backbone/conv1/kernel"].shape == (7, 7, 3, 16)  # OIHW -> HWIO
    assert "batch_stats/backbone/res4f/bn_branch2b/mean" in data.files


def test_resnet101_matches_torch(tmp_path):
  # All 33 blocks (res4a, res4b1 .. res4b22) at base width 16: same keys as torchvision's.
  diff, scale, meta = convert_and_compare(tmp_path, "resnet101", tr.ResNet(101, width=16), 64)
  assert scale > 1.0 and diff < 1e-3
  assert meta["report"]["mapped"]["layer3.22.conv2.weight"] == (
    "params/backbone/res4b22/branch2b/kernel"
  )


def test_fc6_permutation_by_hand():
  # torch flattens (C=2, H=2, W=2) as c*4 + h*2 + w; NHWC flattens as h*4 + w*2 + c.
  w = np.arange(8, dtype=np.float32).reshape(1, 8)  # weight of input index i is i
  k = dense_kernel(w, spatial=2)
  nhwc_to_torch = [c * 4 + h * 2 + x for h in range(2) for x in range(2) for c in range(2)]
  np.testing.assert_array_equal(k[:, 0], nhwc_to_torch)


@pytest.fixture(scope="module")
def small_state_dict(tmp_path_factory):
  net = tr.randomise(tr.ResNet(50, width=8, num_classes=10))
  return {k: v.clone() for k, v in net.state_dict().items()}, tmp_path_factory.mktemp("bad")


def save_and_convert(state_dict, directory, name):
  path = directory / f"{name}.pth"
  torch.save(state_dict, path)
  return convert_file("torchvision", "resnet50", str(path), str(directory / name))


def test_wrong_shape_names_the_key(small_state_dict):
  sd, d = small_state_dict
  sd = dict(sd)
  sd["layer2.1.conv2.weight"] = torch.zeros(16, 16, 5, 5)
  with pytest.raises(
    ConversionError,
    match=r"wrong shape: layer2\.1\.conv2\.weight -> "
    r"params/backbone/res3b/branch2b/kernel: got \(5, 5, 16, 16\), "
    r"expected \(3, 3, 16, 16\)",
  ):
    save_and_convert(sd, d, "wrong_shape")
  assert not os.path.exists(d / "wrong_shape")  # nothing written


def test_unknown_and_missing_keys_are_named(small_state_dict):
  sd, d = small_state_dict
  extra = dict(sd, **{"layer2.9.conv1.weight": torch.zeros(1), "head.weight": torch.zeros(1)})
  with pytest.raises(
    ConversionError,
    match=r"no place in the model: layer2\.9\.conv1\.weight, "
    r"head\.weight",
  ):
    save_and_convert(extra, d, "unknown")
  missing = {k: v for k, v in sd.items() if k not in ("fc.bias", "layer1.2.bn1.running_mean")}
  with pytest.raises(
    ConversionError,
    match=r"missing \(no source key maps to them\): "
    r"batch_stats/backbone/res2c/bn_branch2a/mean, params/classifier/fc/bias",
  ):
    save_and_convert(missing, d, "missing")
  # A ResNet-101 file converted as ResNet-50: the extra res4 blocks are named.
  with pytest.raises(ConversionError, match=r"layer3\.6\.conv1\.weight"):
    path = d / "r101.pth"
    torch.save(tr.ResNet(101, width=8, num_classes=10).state_dict(), path)
    convert_file("torchvision", "resnet50", str(path), str(d / "r101"))


def test_rewrites_existing_directory_and_refuses_foreign_one(small_state_dict, tmp_path):
  sd, d = small_state_dict
  save_and_convert(sd, d, "again")
  save_and_convert(sd, d, "again")  # replaces the previous converted directory
  assert sorted(os.listdir(d / "again")) == ["converted.json", "variables.npz"]
  foreign = tmp_path / "foreign"
  foreign.mkdir()
  (foreign / "notes.txt").write_text("mine")
  torch.save(sd, tmp_path / "x.pth")
  with pytest.raises(FileExistsError, match="not a converted-weights directory"):
    convert_file("torchvision", "resnet50", str(tmp_path / "x.pth"), str(foreign))
  assert (foreign / "notes.txt").read_text() == "mine"
