"""ResNet-50 in torchvision's layout (v1.5: stride on the 3x3 convolution), written out here because
torchvision is not a dependency. State-dict keys and shapes are identical to torchvision's, so its
published checkpoints load with ``strict=True``.

Layers are named at block granularity with torchvision's names: ``conv1, bn1, relu, maxpool,
layer1.0 ... layer1.2, layer2.0 ... layer2.3, layer3.0 ... layer3.5, layer4.0 ... layer4.2``.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = [
    "Bottleneck",
    "ResNet",
    "build_resnet50",
    "resnet_stages",
    "RESNET_LAYER_PRESETS",
    "RESNET_MIN_SIDE",
]

#: Default layers, one choice per role:
#: - content ``layer2.3``: the last block at 1/8 resolution, the same stride as VGG's ``relu4_2``
#:   (Gatys et al.'s content layer), so content keeps comparable spatial detail; deeper blocks are
#:   1/16 and 1/32 and lose layout on small images.
#: - style: one layer per resolution (1/2, 1/4, 1/8, 1/16, 1/32), the last of each stage, mirroring
#:   VGG's relu1_1 ... relu5_1 spanning every scale.
RESNET_LAYER_PRESETS: dict[str, tuple[str, ...]] = {
    "content": ("layer2.3",),
    "style": ("relu", "layer1.2", "layer2.3", "layer3.5", "layer4.2"),
}

#: A policy, not a hard limit: every convolution and pool is padded, so tiny inputs run too (checked
#: in the tests). The network's total stride is 32, so 32 px is the smallest side at which layer4's
#: single output pixel covers a whole 32x32 cell of real image rather than mostly zero padding.
RESNET_MIN_SIDE = 32


class Bottleneck(nn.Module):
    """torchvision's Bottleneck: 1x1 -> 3x3 (stride) -> 1x1 (x4 channels), plus the shortcut."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        width = planes
        self.conv1 = nn.Conv2d(inplanes, width, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, planes * self.expansion, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet(nn.Module):
    """conv1, bn1, relu, maxpool, layer1..layer4, avgpool, fc (torchvision's attribute names)."""

    def __init__(self, layers: tuple[int, int, int, int] = (3, 4, 6, 3), num_classes: int = 1000) -> None:
        super().__init__()
        self.inplanes = 64
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(64, layers[0])
        self.layer2 = self._make_layer(128, layers[1], stride=2)
        self.layer3 = self._make_layer(256, layers[2], stride=2)
        self.layer4 = self._make_layer(512, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512 * Bottleneck.expansion, num_classes)
        # torchvision's initialisation (deterministic given torch.manual_seed)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def _make_layer(self, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * Bottleneck.expansion:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes * Bottleneck.expansion, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(planes * Bottleneck.expansion),
            )
        layers = [Bottleneck(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * Bottleneck.expansion
        layers += [Bottleneck(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The output of layer4 (what chaining :func:`resnet_stages` computes)."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.avgpool(self.forward_features(x)), 1))


def build_resnet50() -> ResNet:
    """ResNet-50 ([3, 4, 6, 3] bottlenecks) with torchvision's names and initialisation."""
    return ResNet((3, 4, 6, 3))


def resnet_stages(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The forward path up to layer4, in order, at block granularity with torchvision names."""
    stages: list[tuple[str, nn.Module]] = [
        ("conv1", model.conv1),  # type: ignore[list-item]
        ("bn1", model.bn1),  # type: ignore[list-item]
        ("relu", nn.ReLU(inplace=False)),  # the model's own ReLU is in-place; a stage must not be
        ("maxpool", model.maxpool),  # type: ignore[list-item]
    ]
    for layer in ("layer1", "layer2", "layer3", "layer4"):
        for index, block in enumerate(getattr(model, layer)):
            stages.append((f"{layer}.{index}", block))
    return stages
