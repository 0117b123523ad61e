"""PyTorch reference networks whose state_dict keys equal torchvision's (AlexNet, ResNet).

Written here because torchvision does not import beside the pinned CPU torch. The layer
structure follows torchvision/models/alexnet.py and resnet.py (Bottleneck "v1.5": stride
in the 3x3 conv); widths can be reduced for fast tests, which changes no key names.
"""

from __future__ import annotations

import torch
from torch import nn

DEPTHS = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}


class AlexNet(nn.Module):
  """torchvision.models.AlexNet (features / avgpool / classifier indices as there)."""

  def __init__(self, channels=(64, 192, 384, 256, 256), hidden=4096, num_classes=1000):
    super().__init__()
    c1, c2, c3, c4, c5 = channels
    self.features = nn.Sequential(
      nn.Conv2d(3, c1, 11, stride=4, padding=2),
      nn.ReLU(inplace=True),
      nn.MaxPool2d(3, 2),
      nn.Conv2d(c1, c2, 5, padding=2),
      nn.ReLU(inplace=True),
      nn.MaxPool2d(3, 2),
      nn.Conv2d(c2, c3, 3, padding=1),
      nn.ReLU(inplace=True),
      nn.Conv2d(c3, c4, 3, padding=1),
      nn.ReLU(inplace=True),
      nn.Conv2d(c4, c5, 3, padding=1),
      nn.ReLU(inplace=True),
      nn.MaxPool2d(3, 2),
    )
    self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
    self.classifier = nn.Sequential(
      nn.Dropout(0.5),
      nn.Linear(c5 * 36, hidden),
      nn.ReLU(inplace=True),
      nn.Dropout(0.5),
      nn.Linear(hidden, hidden),
      nn.ReLU(inplace=True),
      nn.Linear(hidden, num_classes),
    )

  def forward(self, x):
    return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


class Bottleneck(nn.Module):
  expansion = 4

  def __init__(self, inplanes, planes, stride=1, downsample=None):
    super().__init__()
    self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
    self.bn1 = nn.BatchNorm2d(planes)
    self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
    self.bn2 = nn.BatchNorm2d(planes)
    self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
    self.bn3 = nn.BatchNorm2d(planes * 4)
    self.relu = nn.ReLU(inplace=True)
    self.downsample = downsample

  def forward(self, x):
    identity = x if self.downsample is None else self.downsample(x)
    out = self.relu(self.bn1(self.conv1(x)))
    out = self.relu(self.bn2(self.conv2(out)))
    return self.relu(self.bn3(self.conv3(out)) + identity)


class ResNet(nn.Module):
  """torchvision.models.ResNet with Bottleneck blocks."""

  def __init__(self, depth=50, width=64, num_classes=1000):
    super().__init__()
    self.conv1 = nn.Conv2d(3, width, 7, stride=2, padding=3, bias=False)
    self.bn1 = nn.BatchNorm2d(width)
    self.relu = nn.ReLU(inplace=True)
    self.maxpool = nn.MaxPool2d(3, 2, padding=1)
    inplanes = width
    for i, blocks in enumerate(DEPTHS[depth]):
      planes, stride = width * 2**i, 1 if i == 0 else 2
      downsample = nn.Sequential(
        nn.Conv2d(inplanes, planes * 4, 1, stride=stride, bias=False), nn.BatchNorm2d(planes * 4)
      )
      layers = [Bottleneck(inplanes, planes, stride, downsample)]
      inplanes = planes * 4
      layers += [Bottleneck(inplanes, planes) for _ in range(1, blocks)]
      setattr(self, f"layer{i + 1}", nn.Sequential(*layers))
    self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
    self.fc = nn.Linear(inplanes, num_classes)

  def forward(self, x):
    x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
    x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
    return self.fc(torch.flatten(self.avgpool(x), 1))


def randomise(model: nn.Module, seed: int = 0) -> nn.Module:
  """He-scaled random weights and non-trivial BatchNorm statistics; eval mode."""
  g = torch.Generator().manual_seed(seed)
  with torch.no_grad():
    for name, t in model.state_dict().items():
      if name.endswith("num_batches_tracked"):
        t.fill_(7)
      elif name.endswith("running_var"):
        t.copy_(torch.rand(t.shape, generator=g) * 1.5 + 0.5)
      elif name.endswith("running_mean") or name.endswith("bias"):
        t.copy_(torch.randn(t.shape, generator=g) * 0.1)
      elif t.ndim == 1:  # BatchNorm weight
        t.copy_(torch.rand(t.shape, generator=g) * 0.5 + 0.5)
      else:
        fan_in = t[0].numel()
        t.copy_(torch.randn(t.shape, generator=g) * (2.0 / fan_in) ** 0.5)
  return model.eval()


# ------------------------------------------------------------------ HyperFace-AlexNet
# The same network as hyperface_jax/models/hyperface.py (docs/papers.md section 1.2) in
# PyTorch, NCHW, for bench/vs_pytorch.py's speed comparison. Channel counts are passed in
# (the bench computes them with models/layers.py scale_channels); the fused map is
# flattened in NCHW order (ours: NHWC), which changes no shape or FLOP count.
HYPERFACE_OUTPUTS = {"detection": 2, "landmarks": 42, "visibility": 21, "pose": 3, "gender": 2}


class HyperFaceAlexNet(nn.Module):
  """Backbone conv1..pool5 (+ LRN, optional BatchNorm), fusion conv1a / conv3a / conv_all /
  fc_full, and one fc_<task>1 (head_width) -> fc_<task>2 head per task."""

  def __init__(
    self,
    conv=(96, 256, 384, 384, 256),
    fused=256,
    fusion=192,
    fc_full=3072,
    grid=6,
    head_width=512,
    dropout=0.5,
    batch_norm=False,
    lrn=True,
    outputs=None,
  ):
    super().__init__()
    c1, c2, c3, c4, c5 = conv

    def block(cin, cout, k, stride=1, pad=0):
      layers = [nn.Conv2d(cin, cout, k, stride=stride, padding=pad)]
      if batch_norm:  # models/layers.py conv_norm_relu: BatchNorm momentum 0.9 (torch: 0.1)
        layers.append(nn.BatchNorm2d(cout, eps=1e-5, momentum=0.1))
      return nn.Sequential(*layers, nn.ReLU(inplace=True))

    # docs/papers.md 1.2 row 3: Caffe LRN (torch divides alpha by size as Caffe does).
    norm = nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=1.0) if lrn else nn.Identity()
    pool = nn.MaxPool2d(3, 2)
    self.level1 = nn.Sequential(block(3, c1, 11, 4), pool, norm)  # rows 1-3
    self.level2 = nn.Sequential(block(c1, c2, 5, 1, 2), pool, norm)  # rows 5-6
    self.conv3 = block(c2, c3, 3, 1, 1)  # row 7
    self.level5 = nn.Sequential(block(c3, c4, 3, 1, 1), block(c4, c5, 3, 1, 1), pool)  # 9-11
    self.conv1a = block(c1, fused, 4, 4)  # row 4 (on norm1)
    self.conv3a = block(c3, fused, 2, 2)  # row 8
    self.conv_all = block(2 * fused + c5, fusion, 1)  # rows 12-13
    self.fc_full = nn.Sequential(
      nn.Flatten(),
      nn.Linear(fusion * grid * grid, fc_full),
      nn.ReLU(inplace=True),
      nn.Dropout(dropout),
    )  # row 14
    self.heads = nn.ModuleDict(
      {
        t: nn.Sequential(
          nn.Linear(fc_full, head_width),
          nn.ReLU(inplace=True),
          nn.Dropout(dropout),
          nn.Linear(head_width, n),
        )
        for t, n in (outputs or HYPERFACE_OUTPUTS).items()
      }
    )

  def forward(self, x):
    norm1 = self.level1(x)
    conv3 = self.conv3(self.level2(norm1))
    pool5 = self.level5(conv3)
    fused = torch.cat([self.conv1a(norm1), self.conv3a(conv3), pool5], dim=1)
    h = self.fc_full(self.conv_all(fused))
    return {t: head(h) for t, head in self.heads.items()}


def hyperface_loss(outputs, batch, weights):
  """sum_t w_t L_t with the losses of hyperface_jax/losses.py (docs/papers.md 1.6), every
  example labelled: softmax cross-entropy (detection, gender), the visibility-weighted
  landmark L2 1/(2N) sum v ||d||^2, mean squared error (visibility, pose); each a batch mean."""
  f = torch.nn.functional
  lm = outputs["landmarks"].view(-1, 21, 2)
  sq = ((lm - batch["landmarks"]) ** 2).sum(-1)
  losses = {
    "detection": f.cross_entropy(outputs["detection"], batch["detection"]),
    "landmarks": ((batch["visibility"] * sq).sum(-1) / (2.0 * 21)).mean(),
    "visibility": ((outputs["visibility"] - batch["visibility"]) ** 2).mean(),
    "pose": ((outputs["pose"] - batch["pose"]) ** 2).mean(),
    "gender": f.cross_entropy(outputs["gender"], batch["gender"]),
  }
  return sum(weights[t] * v for t, v in losses.items())
