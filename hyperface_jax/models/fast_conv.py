"""CPU speed levers for a 2-D convolution: which formulation each layer gets, and FastConv.

`conv_algorithm` picks, per layer and `config.model.conv_impl`, XLA's convolution
(nn.Conv), a Winograd convolution (models/winograd.py) or the shifted-matmul weight
gradient below; `FastConv` computes the latter two with nn.Conv's parameters.

On XLA's CPU backend the weight gradient of AlexNet's conv1 (11x11, stride 4, 3 input
channels) runs at a fraction of the machine's matmul rate (bench/vs_pytorch.py --layers):
XLA computes it as a convolution with a 4-dilated 55x55 window over 3 "batch" channels.
`conv2d_shifted_dw` computes the same convolution with a `jax.custom_vjp`:

- forward: `lax.conv_general_dilated`, exactly as `nn.Conv`;
- input gradient: XLA's transposed convolution (the vjp of the forward with respect to x);
- weight gradient: for every kernel offset (kh, kw), dW[kh, kw] = sum over the batch and the
  output positions of x_shift(kh, kw)^T @ dy, where x_shift is the strided window of the
  zero-padded input that the offset sees; one matmul (einsum) per offset.

The result equals XLA's weight gradient up to float32 summation order (tests/test_fast_conv.py).
`FastConv` is a flax module with nn.Conv's parameter names and shapes ("kernel"
[KH, KW, Cin / groups, Cout], "bias" [Cout]), so checkpoints and converted weights load into
either implementation unchanged.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Sequence, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from hyperface_jax.models import space_to_depth, winograd

CONV_IMPLS = ("xla", "shifted_dw", "winograd", "auto")
ALGORITHMS = ("shifted_dw", "winograd")
_DIMS = ("NHWC", "HWIO", "NHWC")

# "auto" computes a convolution by Winograd only when it does at least this many
# multiply-adds per image. HyperFace-AlexNet's (105-448 M at 227 px) trained 1.45x faster as
# Winograd convolutions on the 2-core CPU (19.5 -> 28.2 images/s with conv2..conv5), while
# the demo model's (5-19 M: width 0.5 at 99 px) ran slower (279 -> 240) and compile slower:
# small convolutions are bound by the memory traffic of the transforms
# (bench/winograd_tiles.py, README "Against PyTorch").
WINOGRAD_MIN_MACS = 50_000_000

Padding = Tuple[Tuple[int, int], Tuple[int, int]]


def conv_algorithm(
  conv_impl: str,
  *,
  kernel: int,
  stride: int,
  groups: int,
  macs_per_image: int,
  winograd_kernels: Sequence[int],
) -> str:
  """How a convolution is computed: "xla" (nn.Conv), "shifted_dw" or "winograd" (FastConv).

  - "xla": every convolution is nn.Conv.
  - "shifted_dw": strided ones (conv1) get the shifted-matmul weight gradient.
  - "winograd": ungrouped ones whose kernel, after the space-to-depth rewrite of a strided
    one (ceil(kernel / stride)), is in `winograd_kernels` are Winograd convolutions
    (models/winograd.py); other strided ones as "shifted_dw".
  - "auto": on the CPU backend "winograd", the Winograd part only for convolutions of at
    least WINOGRAD_MIN_MACS multiply-adds per image; on accelerators "xla" (their
    convolution libraries were not measured against these formulations).
  """
  if conv_impl not in CONV_IMPLS:
    raise ValueError(f"conv_impl must be one of {CONV_IMPLS}, got {conv_impl!r}.")
  if conv_impl == "xla" or (conv_impl == "auto" and jax.default_backend() != "cpu"):
    return "xla"
  (k2, _) = space_to_depth.s2d_kernel_size((kernel, kernel), (stride, stride))
  winograd_ok = groups == 1 and k2 in winograd_kernels
  if conv_impl != "shifted_dw" and winograd_ok:
    if conv_impl == "winograd" or macs_per_image >= WINOGRAD_MIN_MACS:
      return "winograd"
  return "shifted_dw" if stride > 1 else "xla"


def _forward(x, w, strides, padding, groups):
  return lax.conv_general_dilated(
    x, w, strides, padding, dimension_numbers=_DIMS, feature_group_count=groups
  )


def shifted_weight_grad(
  x: jax.Array, dy: jax.Array, kernel_hw: Tuple[int, int], strides, padding, groups: int
) -> jax.Array:
  """Weight gradient of an NHWC / HWIO convolution as one matmul per kernel offset.

  An ungrouped strided convolution (conv1, 11x11 / 4) is first rewritten by space-to-depth
  as a stride-1 one: the padded input [B, H, W, C] becomes [B, H / s, W / s, s * s * C] and
  the kernel ceil(K / s) x ceil(K / s); its gradient is cut back to K x K. The offsets then
  multiply s * s * C = 48 channels instead of 3 (and 9 offsets instead of 121), which is what
  makes the matmuls efficient.

  Args:
    x: the convolution's input [B, H, W, Cin].
    dy: cotangent of its output [B, Ho, Wo, Cout].
    kernel_hw: (KH, KW).
    strides: (sh, sw).
    padding: ((top, bottom), (left, right)) zero padding.
    groups: feature_group_count (Cin and Cout divisible by it).

  Returns:
    dW [KH, KW, Cin / groups, Cout] in dy's dtype.
  """
  kh_size, kw_size = kernel_hw
  sh, sw = strides
  b, _, _, cin = x.shape
  _, ho, wo, cout = dy.shape
  if (sh, sw) != (1, 1) and groups == 1:
    xs2d = space_to_depth.input_s2d(x, kernel_hw, strides, padding)
    k2 = space_to_depth.s2d_kernel_size(kernel_hw, strides)
    dw = shifted_weight_grad(xs2d, dy, k2, (1, 1), ((0, 0), (0, 0)), 1)
    return space_to_depth.kernel_from_s2d(dw, kernel_hw, strides, cin)
  xp = jnp.pad(x, ((0, 0), tuple(padding[0]), tuple(padding[1]), (0, 0)))
  cg, og = cin // groups, cout // groups
  dyg = dy.reshape(b, ho, wo, groups, og)
  taps = []
  for kh in range(kh_size):
    for kw in range(kw_size):
      xs = lax.slice(
        xp,
        (0, kh, kw, 0),
        (b, kh + sh * (ho - 1) + 1, kw + sw * (wo - 1) + 1, cin),
        (1, sh, sw, 1),
      )  # [B, Ho, Wo, Cin]: the input pixels that offset (kh, kw) multiplies
      if groups == 1:
        taps.append(jnp.einsum("bhwc,bhwo->co", xs, dy))
      else:
        t = jnp.einsum("bhwgc,bhwgo->cgo", xs.reshape(b, ho, wo, groups, cg), dyg)
        taps.append(t.reshape(cg, cout))  # output channel g * og + o, as in HWIO groups
  return jnp.stack(taps).reshape(kh_size, kw_size, cg, cout).astype(dy.dtype)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def conv2d_shifted_dw(x, w, strides, padding, groups):
  """`lax.conv_general_dilated` (NHWC, HWIO) whose weight gradient is `shifted_weight_grad`.

  Args:
    x: input [B, H, W, Cin].
    w: kernel [KH, KW, Cin / groups, Cout].
    strides: (sh, sw), a tuple of ints.
    padding: ((top, bottom), (left, right)), tuples of ints.
    groups: feature_group_count.

  Returns:
    The convolution [B, Ho, Wo, Cout].
  """
  return _forward(x, w, strides, padding, groups)


def _fwd(x, w, strides, padding, groups):
  return _forward(x, w, strides, padding, groups), (x, w)


def _bwd(strides, padding, groups, res, dy):
  x, w = res
  # Input gradient: XLA's own transposed convolution (the vjp of the forward in x only).
  _, vjp_x = jax.vjp(lambda x_: _forward(x_, w, strides, padding, groups), x)
  (dx,) = vjp_x(dy)
  dw = shifted_weight_grad(x, dy, w.shape[:2], strides, padding, groups).astype(w.dtype)
  return dx, dw


conv2d_shifted_dw.defvjp(_fwd, _bwd)


def _explicit_padding(padding, kernel_hw) -> Padding:
  if isinstance(padding, str):
    if padding.upper() != "VALID":
      raise ValueError(f"FastConv: padding must be VALID or explicit pairs, got {padding!r}.")
    return ((0, 0), (0, 0))
  pairs = tuple(tuple(int(v) for v in p) for p in padding)
  if len(pairs) != len(kernel_hw) or any(len(p) != 2 for p in pairs):
    raise ValueError(f"FastConv: padding must be ((top, bottom), (left, right)), got {padding}.")
  return pairs


class FastConv(nn.Module):
  """nn.Conv (2-D, NHWC) computed as `algorithm`: "shifted_dw" (XLA's forward, the
  shifted-matmul weight gradient; module docstring) or "winograd" (models/winograd.py
  F(winograd_tile x winograd_tile, K x K), strided kernels through space-to-depth).

  Parameters and their names, shapes and initialisers are nn.Conv's; the forward value is
  nn.Conv's too (Winograd: up to float rounding). Only what models/alexnet.py uses is
  supported: 2-D kernels, integer strides, VALID or explicit padding, feature_group_count
  (not with Winograd), no dilation.

  Attributes:
    features: output channels.
    kernel_size: (KH, KW).
    strides: (sh, sw).
    padding: "VALID" or ((top, bottom), (left, right)).
    feature_group_count: channel groups (Cin and features divisible by it).
    use_bias: add a "bias" [features].
    kernel_init: initialiser of "kernel" [KH, KW, Cin / groups, features].
    bias_init: initialiser of "bias".
    dtype: computation dtype (None: the input's); params are float32.
    algorithm: "shifted_dw" or "winograd" (ALGORITHMS).
    winograd_tile: output tile side m of the Winograd convolution.
  """

  features: int
  kernel_size: Sequence[int]
  strides: Sequence[int] = (1, 1)
  padding: Any = "VALID"
  feature_group_count: int = 1
  use_bias: bool = True
  kernel_init: Callable = nn.linear.default_kernel_init
  bias_init: Callable = nn.initializers.zeros_init()
  dtype: Any = None
  algorithm: str = "shifted_dw"
  winograd_tile: int = 2

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    kernel_hw = tuple(int(k) for k in self.kernel_size)
    if x.ndim != 4 or len(kernel_hw) != 2:
      raise ValueError(f"FastConv: 2-D NHWC only, got input {x.shape}, kernel {kernel_hw}.")
    groups = int(self.feature_group_count)
    cin = x.shape[-1]
    if cin % groups or self.features % groups:
      raise ValueError(
        f"FastConv: input channels {cin} and features {self.features} must divide into "
        f"{groups} groups."
      )
    kernel = self.param(
      "kernel", self.kernel_init, kernel_hw + (cin // groups, self.features), jnp.float32
    )
    bias = (
      self.param("bias", self.bias_init, (self.features,), jnp.float32) if self.use_bias else None
    )
    x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias, dtype=self.dtype)
    strides = tuple(int(s) for s in self.strides)
    padding = _explicit_padding(self.padding, kernel_hw)
    if self.algorithm == "winograd":
      if groups != 1 or strides[0] != strides[1] or kernel_hw[0] != kernel_hw[1]:
        raise ValueError(
          f"FastConv: the winograd algorithm needs 1 group, square kernels and strides, got "
          f"{groups} groups, kernel {kernel_hw}, strides {strides}."
        )
      y = winograd.conv2d(x, kernel, padding, self.winograd_tile, strides)
    elif self.algorithm == "shifted_dw":
      y = conv2d_shifted_dw(x, kernel, strides, padding, groups)
    else:
      raise ValueError(f"FastConv.algorithm must be one of {ALGORITHMS}, got {self.algorithm!r}.")
    if bias is not None:
      y = y + bias.reshape((1, 1, 1, -1))
    return y
