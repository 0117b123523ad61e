"""Reading `.caffemodel` files without Caffe: the few caffe.proto messages we need.

A caffemodel is a serialized `caffe.NetParameter`. Instead of a hand-written wire-format
decoder we declare the subset of caffe.proto that holds the weights (field numbers as in
BVLC caffe/src/caffe/proto/caffe.proto) as a descriptor and let the `protobuf` package
(already a dependency via TensorFlow) generate the classes: its parser is the well-tested
one, skips every field we do not declare, and accepts packed and unpacked repeated
scalars alike (old caffemodels use the unpacked form).

  NetParameter       name 1, layers 2 (V1LayerParameter, legacy), layer 100
  LayerParameter     name 1, type 2 (string), bottom 3, top 4, blobs 7
  V1LayerParameter   layer 1 (V0LayerParameter), bottom 2, top 3, name 4, type 5 (enum),
                     blobs 6
  V0LayerParameter   name 1, type 2 (string), blobs 50
  BlobProto          num 1, channels 2, height 3, width 4, data 5 (packed float),
                     shape 7 (BlobShape), double_data 8 (packed double)
  BlobShape          dim 1 (packed int64)
"""

from __future__ import annotations

import dataclasses
from typing import List

import numpy as np
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

_F = descriptor_pb2.FieldDescriptorProto
_PACKAGE = "hyperface_jax_caffe_subset"

# (message, [(field, number, type, label, message type or None, packed)])
_MESSAGES = [
  ("BlobShape", [("dim", 1, _F.TYPE_INT64, _F.LABEL_REPEATED, None, True)]),
  (
    "BlobProto",
    [
      ("num", 1, _F.TYPE_INT32, _F.LABEL_OPTIONAL, None, False),
      ("channels", 2, _F.TYPE_INT32, _F.LABEL_OPTIONAL, None, False),
      ("height", 3, _F.TYPE_INT32, _F.LABEL_OPTIONAL, None, False),
      ("width", 4, _F.TYPE_INT32, _F.LABEL_OPTIONAL, None, False),
      ("data", 5, _F.TYPE_FLOAT, _F.LABEL_REPEATED, None, True),
      ("shape", 7, _F.TYPE_MESSAGE, _F.LABEL_OPTIONAL, "BlobShape", False),
      ("double_data", 8, _F.TYPE_DOUBLE, _F.LABEL_REPEATED, None, True),
    ],
  ),
  (
    "LayerParameter",
    [
      ("name", 1, _F.TYPE_STRING, _F.LABEL_OPTIONAL, None, False),
      ("type", 2, _F.TYPE_STRING, _F.LABEL_OPTIONAL, None, False),
      ("bottom", 3, _F.TYPE_STRING, _F.LABEL_REPEATED, None, False),
      ("top", 4, _F.TYPE_STRING, _F.LABEL_REPEATED, None, False),
      ("blobs", 7, _F.TYPE_MESSAGE, _F.LABEL_REPEATED, "BlobProto", False),
    ],
  ),
  (
    "V0LayerParameter",
    [
      ("name", 1, _F.TYPE_STRING, _F.LABEL_OPTIONAL, None, False),
      ("type", 2, _F.TYPE_STRING, _F.LABEL_OPTIONAL, None, False),
      ("blobs", 50, _F.TYPE_MESSAGE, _F.LABEL_REPEATED, "BlobProto", False),
    ],
  ),
  (
    "V1LayerParameter",
    [
      ("layer", 1, _F.TYPE_MESSAGE, _F.LABEL_OPTIONAL, "V0LayerParameter", False),
      ("bottom", 2, _F.TYPE_STRING, _F.LABEL_REPEATED, None, False),
      ("top", 3, _F.TYPE_STRING, _F.LABEL_REPEATED, None, False),
      ("name", 4, _F.TYPE_STRING, _F.LABEL_OPTIONAL, None, False),
      # An enum in caffe.proto (CONVOLUTION = 4, ...); int32 has the same wire format.
      ("type", 5, _F.TYPE_INT32, _F.LABEL_OPTIONAL, None, False),
      ("blobs", 6, _F.TYPE_MESSAGE, _F.LABEL_REPEATED, "BlobProto", False),
    ],
  ),
  (
    "NetParameter",
    [
      ("name", 1, _F.TYPE_STRING, _F.LABEL_OPTIONAL, None, False),
      ("layers", 2, _F.TYPE_MESSAGE, _F.LABEL_REPEATED, "V1LayerParameter", False),
      ("layer", 100, _F.TYPE_MESSAGE, _F.LABEL_REPEATED, "LayerParameter", False),
    ],
  ),
]

# V1LayerParameter.LayerType values of the layers that carry weights (caffe.proto).
V1_TYPES = {
  4: "Convolution",
  14: "InnerProduct",
  15: "LRN",
  17: "Pooling",
  18: "ReLU",
  6: "Dropout",
  5: "Data",
  20: "Softmax",
  21: "SoftmaxWithLoss",
  1: "Accuracy",
}


def _build_classes():
  fdp = descriptor_pb2.FileDescriptorProto(
    name=f"{_PACKAGE}.proto", package=_PACKAGE, syntax="proto2"
  )
  for message, fields in _MESSAGES:
    m = fdp.message_type.add(name=message)
    for name, number, ftype, label, type_name, packed in fields:
      f = m.field.add(name=name, number=number, type=ftype, label=label)
      if type_name:
        f.type_name = f".{_PACKAGE}.{type_name}"
      if packed:
        f.options.packed = True
  pool = descriptor_pool.DescriptorPool()
  pool.Add(fdp)
  return message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{_PACKAGE}.NetParameter"))


NetParameter = _build_classes()


@dataclasses.dataclass
class CaffeLayer:
  """One layer of a caffemodel: name, type name, and its weight blobs as arrays."""

  name: str
  type: str
  blobs: List[np.ndarray]


def blob_array(blob, where: str) -> np.ndarray:
  """A BlobProto as a float32 array of its shape (new `shape` or legacy 4-D dims)."""
  if blob.HasField("shape"):
    shape = tuple(int(d) for d in blob.shape.dim)
  else:
    shape = (blob.num, blob.channels, blob.height, blob.width)
  values = blob.double_data if len(blob.double_data) else blob.data
  data = np.asarray(values, np.float32)
  if data.size != int(np.prod(shape)):
    raise ValueError(
      f"{where}: blob of shape {shape} holds {data.size} values, expected {int(np.prod(shape))}."
    )
  return data.reshape(shape)


def read_caffemodel(path: str) -> List[CaffeLayer]:
  """Every layer of a caffemodel (new `layer` or legacy V1/V0 `layers`), in file order."""
  with open(path, "rb") as f:
    payload = f.read()
  net = NetParameter()
  try:
    net.ParseFromString(payload)
  except Exception as e:  # protobuf's DecodeError; message kept
    raise ValueError(f"{path} is not a Caffe NetParameter (.caffemodel): {e}") from e
  layers = []
  for layer in net.layer:
    layers.append(
      CaffeLayer(
        layer.name,
        layer.type,
        [blob_array(b, f"{path} layer {layer.name!r} blob {i}") for i, b in enumerate(layer.blobs)],
      )
    )
  for v1 in net.layers:
    if v1.HasField("layer"):  # V0 inside V1
      name, ltype, blobs = v1.layer.name, v1.layer.type, v1.layer.blobs
    else:
      name, ltype, blobs = v1.name, V1_TYPES.get(v1.type, f"V1 type {v1.type}"), v1.blobs
    layers.append(
      CaffeLayer(
        name, ltype, [blob_array(b, f"{path} layer {name!r} blob {i}") for i, b in enumerate(blobs)]
      )
    )
  if not layers:
    raise ValueError(f"{path}: no layers found (not a .caffemodel, or an empty net).")
  return layers
