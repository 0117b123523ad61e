"""Writes small .caffemodel fixtures with known weights, and NumPy Caffe forward passes.

The encoder is a minimal protobuf wire-format writer (varints, length-delimited fields,
packed floats), independent of the converter's descriptor-based reader, with the field
numbers of BVLC caffe.proto: NetParameter.layers 2 / layer 100; V1LayerParameter bottom 2,
top 3, name 4, type 5, blobs 6; LayerParameter name 1, type 2, bottom 3, top 4, blobs 7;
BlobProto num 1, channels 2, height 3, width 4, data 5, shape 7 (BlobShape.dim 1).
The forward passes work in NCHW like Caffe (conv as sliding windows, ceil-mode pooling,
ACROSS_CHANNELS LRN, BatchNorm with its moving-average factor, Scale).
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

# ---- protobuf wire format ---------------------------------------------------------------


def varint(n: int) -> bytes:
  out = bytearray()
  while True:
    byte, n = n & 0x7F, n >> 7
    out.append(byte | (0x80 if n else 0))
    if not n:
      return bytes(out)


def field(number: int, wire_type: int, payload: bytes) -> bytes:
  key = varint(number << 3 | wire_type)
  if wire_type == 0:
    return key + payload
  return key + varint(len(payload)) + payload  # wire type 2: length-delimited


def string(number: int, text: str) -> bytes:
  return field(number, 2, text.encode())


def blob(array: np.ndarray, legacy: bool) -> bytes:
  """BlobProto: legacy num/channels/height/width (padded to 4-D) or BlobShape dims."""
  a = np.asarray(array, np.float32)
  if legacy:
    dims = (1,) * (4 - a.ndim) + a.shape
    head = b"".join(field(i + 1, 0, varint(d)) for i, d in enumerate(dims))
  else:
    head = field(7, 2, field(1, 2, b"".join(varint(d) for d in a.shape)))
  return head + field(5, 2, a.astype("<f4").tobytes())  # packed repeated float


def v1_layer(name, type_id, blobs=(), bottom=(), top=()) -> bytes:
  body = b"".join(string(2, b) for b in bottom) + b"".join(string(3, t) for t in top)
  body += string(4, name) + field(5, 0, varint(type_id))
  body += b"".join(field(6, 2, blob(b, legacy=True)) for b in blobs)
  return field(2, 2, body)  # NetParameter.layers


def layer(name, type_name, blobs=()) -> bytes:
  body = string(1, name) + string(2, type_name)
  body += b"".join(field(7, 2, blob(b, legacy=False)) for b in blobs)
  return field(100, 2, body)  # NetParameter.layer


# ---- NumPy Caffe layers (NCHW) ----------------------------------------------------------


def conv(x, w, b=None, stride=1, pad=0, groups=1):
  x = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
  kh, kw = w.shape[2:]
  win = sliding_window_view(x, (kh, kw), axis=(2, 3))[:, :, ::stride, ::stride]
  cin, cout = x.shape[1] // groups, w.shape[0] // groups
  outs = [
    np.einsum(
      "nchwij,ocij->nohw",
      win[:, g * cin : (g + 1) * cin],
      w[g * cout : (g + 1) * cout],
      optimize=True,
    )
    for g in range(groups)
  ]
  y = np.concatenate(outs, axis=1)
  return y if b is None else y + b.reshape(1, -1, 1, 1)


def max_pool_ceil(x, k=3, s=2):
  """Caffe MAX pooling without padding: ceil((H - k) / s) + 1 windows, the last clipped."""
  h, w = x.shape[2:]
  oh, ow = -(-(h - k) // s) + 1, -(-(w - k) // s) + 1
  x = np.pad(
    x,
    ((0, 0), (0, 0), (0, (oh - 1) * s + k - h), (0, (ow - 1) * s + k - w)),
    constant_values=-np.inf,
  )
  return sliding_window_view(x, (k, k), axis=(2, 3))[:, :, ::s, ::s].max(axis=(-1, -2))


def lrn(x, size=5, alpha=1e-4, beta=0.75, k=1.0):
  sq = np.pad(x * x, ((0, 0), ((size - 1) // 2, size // 2), (0, 0), (0, 0)))
  window = sum(sq[:, i : i + x.shape[1]] for i in range(size))
  return x / (k + alpha / size * window) ** beta


relu = lambda x: np.maximum(x, 0)


# ---- fixtures ---------------------------------------------------------------------------

V1 = dict(conv=4, fc=14, lrn=15, pool=17, relu=18, dropout=6)


def alexnet(rng, channels=(8, 16, 24, 24, 16), hidden=32, classes=10, lrn_first=True):
  """(caffemodel bytes, weights) of a narrow grouped AlexNet in V1 `layers` format."""
  c = (3,) + tuple(channels)
  groups = {"conv2": 2, "conv4": 2, "conv5": 2}
  shapes = {
    f"conv{i + 1}": (c[i + 1], c[i] // groups.get(f"conv{i + 1}", 1), k, k)
    for i, k in enumerate((11, 5, 3, 3, 3))
  }
  shapes.update(fc6=(hidden, c[5] * 36), fc7=(hidden, hidden), fc8=(classes, hidden))
  weights = {
    n: (
      rng.normal(size=s) * np.sqrt(2.0 / np.prod(s[1:])) * (5 if n == "conv1" else 1),
      rng.normal(size=s[0]) * 0.1,
    )
    for n, s in shapes.items()
  }
  order = ["conv1", "relu1"] + (["norm1", "pool1"] if lrn_first else ["pool1", "norm1"])
  order += ["conv2", "relu2"] + (["norm2", "pool2"] if lrn_first else ["pool2", "norm2"])
  order += [
    "conv3",
    "relu3",
    "conv4",
    "relu4",
    "conv5",
    "relu5",
    "pool5",
    "fc6",
    "relu6",
    "drop6",
    "fc7",
    "relu7",
    "drop7",
    "fc8",
  ]
  kinds = dict(conv="conv", fc="fc", relu="relu", norm="lrn", pool="pool", drop="dropout")
  net = string(1, "AlexNet")
  for name in order:
    kind = kinds[name.rstrip("0123456789")]
    net += v1_layer(name, V1[kind], weights.get(name, ()), bottom=["x"], top=["x"])
  return net, weights


def alexnet_forward(x, weights, lrn_first=True):
  """Caffe forward of `alexnet` on NCHW BGR input."""
  p = weights
  levels = []
  y = relu(conv(x, *p["conv1"], stride=4))
  y = max_pool_ceil(lrn(y)) if lrn_first else lrn(max_pool_ceil(y))
  levels.append(y)
  y = relu(conv(y, *p["conv2"], pad=2, groups=2))
  y = max_pool_ceil(lrn(y)) if lrn_first else lrn(max_pool_ceil(y))
  y = relu(conv(y, *p["conv3"], pad=1))
  y = relu(conv(y, *p["conv4"], pad=1, groups=2))
  y = max_pool_ceil(relu(conv(y, *p["conv5"], pad=1, groups=2)))
  y = y.reshape(y.shape[0], -1)  # Caffe flattens C, H, W
  y = relu(y @ p["fc6"][0].T + p["fc6"][1])
  y = relu(y @ p["fc7"][0].T + p["fc7"][1])
  return y @ p["fc8"][0].T + p["fc8"][1]


RESNET101_BLOCKS = (
  ["a", "b", "c"],
  ["a", "b1", "b2", "b3"],
  ["a"] + [f"b{i}" for i in range(1, 23)],
  ["a", "b", "c"],
)


def resnet101(rng, width=4, classes=10):
  """(caffemodel bytes, layers dict) of a narrow ResNet-101 in the release's naming."""
  layers = {}

  def bn(suffix, ch):
    factor = 999.982  # a typical moving-average factor of the release
    mean, var = rng.normal(size=ch) * 0.1, rng.uniform(0.5, 2.0, ch)
    layers[f"bn{suffix}"] = ("BatchNorm", [mean * factor, var * factor, np.array([factor])])
    layers[f"scale{suffix}"] = ("Scale", [rng.uniform(0.3, 0.8, ch), rng.normal(size=ch) * 0.1])

  def conv_w(name, cout, cin, k):
    layers[name] = (
      "Convolution",
      [rng.normal(size=(cout, cin, k, k)) * np.sqrt(2 / (cin * k * k))],
    )

  conv_w("conv1", width, 3, 7)
  bn("_conv1", width)
  cin = width
  for s, blocks in enumerate(RESNET101_BLOCKS):
    w = width * 2**s
    for b in blocks:
      tag = f"{s + 2}{b}"
      if b == "a":
        conv_w(f"res{tag}_branch1", 4 * w, cin, 1)
        bn(f"{tag}_branch1", 4 * w)
      for branch, (cout, ci, k) in zip("abc", ((w, cin, 1), (w, w, 3), (4 * w, w, 1)), strict=True):
        conv_w(f"res{tag}_branch2{branch}", cout, ci, k)
        bn(f"{tag}_branch2{branch}", cout)
      cin = 4 * w
  layers["fc1000"] = (
    "InnerProduct",
    [rng.normal(size=(classes, cin)) * 0.3, rng.normal(size=classes) * 0.1],
  )
  net = string(1, "ResNet-101") + layer("data", "Input")
  for name, (type_name, blobs) in layers.items():
    net += layer(name, type_name, blobs)
    if type_name == "Scale":
      net += layer(f"{name}_relu", "ReLU")
  return net, layers


def resnet101_forward(x, layers):
  """Caffe forward of `resnet101` (stride in branch2a, ceil-mode pool1) on NCHW input."""

  def bn(y, suffix):
    mean, var, factor = layers[f"bn{suffix}"][1]
    gamma, beta = layers[f"scale{suffix}"][1]
    y = (y - (mean / factor[0]).reshape(1, -1, 1, 1)) / np.sqrt(
      (var / factor[0]).reshape(1, -1, 1, 1) + 1e-5
    )
    return y * gamma.reshape(1, -1, 1, 1) + beta.reshape(1, -1, 1, 1)

  y = max_pool_ceil(relu(bn(conv(x, layers["conv1"][1][0], stride=2, pad=3), "_conv1")))
  for s, blocks in enumerate(RESNET101_BLOCKS):
    for b in blocks:
      tag, stride = f"{s + 2}{b}", 2 if (b == "a" and s > 0) else 1
      short = y
      if b == "a":
        short = bn(conv(y, layers[f"res{tag}_branch1"][1][0], stride=stride), f"{tag}_branch1")
      z = relu(bn(conv(y, layers[f"res{tag}_branch2a"][1][0], stride=stride), f"{tag}_branch2a"))
      z = relu(bn(conv(z, layers[f"res{tag}_branch2b"][1][0], pad=1), f"{tag}_branch2b"))
      y = relu(bn(conv(z, layers[f"res{tag}_branch2c"][1][0]), f"{tag}_branch2c") + short)
  y = y.mean(axis=(2, 3))  # pool5: 7x7 average = global average at 224
  w, b = layers["fc1000"][1]
  return y @ w.T + b
