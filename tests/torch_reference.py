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
