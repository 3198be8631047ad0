"""VGG architectures in torchvision's layout (so torchvision's checkpoints load unchanged),
with layer names derived by walking ``features``: conv1_1, relu1_1, ..., pool1, conv2_1, ...
"""

from __future__ import annotations

from torch import nn

__all__ = ["VGG", "build_vgg", "vgg_stages", "VGG_BLOCKS", "TINY_VGG_CHANNELS"]

#: convolutions per block
VGG_BLOCKS = {"vgg16": (2, 2, 3, 3, 3), "vgg19": (2, 2, 4, 4, 4), "tiny_vgg": (2, 2, 4, 4, 4)}
_CHANNELS = (64, 128, 256, 512, 512)
#: tiny_vgg: the same topology and names as VGG19 with 1/8 of the channels (fast CPU tests)
TINY_VGG_CHANNELS = (8, 16, 32, 64, 64)


class VGG(nn.Module):
    """The convolutional part of VGG (``features`` as in torchvision; no classifier)."""

    def __init__(self, blocks: tuple[int, ...], channels: tuple[int, ...]) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 3
        for n_convs, c_out in zip(blocks, channels):
            for _ in range(n_convs):
                layers += [nn.Conv2d(c_in, c_out, kernel_size=3, padding=1), nn.ReLU(inplace=False)]
                c_in = c_out
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        self.features = nn.Sequential(*layers)

    def forward(self, x):  # type: ignore[no-untyped-def]
        return self.features(x)


def build_vgg(arch: str) -> VGG:
    """Build ``vgg16``, ``vgg19`` or ``tiny_vgg`` (uninitialised beyond PyTorch defaults)."""
    channels = TINY_VGG_CHANNELS if arch == "tiny_vgg" else _CHANNELS
    return VGG(VGG_BLOCKS[arch], channels)


def vgg_stages(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Name every layer of ``model.features`` in forward order (conv1_1, relu1_1, ..., pool5)."""
    names: list[tuple[str, nn.Module]] = []
    block, index = 1, 1
    for layer in model.features:  # type: ignore[union-attr]
        if isinstance(layer, nn.Conv2d):
            names.append((f"conv{block}_{index}", layer))
        elif isinstance(layer, nn.ReLU):
            names.append((f"relu{block}_{index}", layer))
            index += 1
        elif isinstance(layer, (nn.MaxPool2d, nn.AvgPool2d)):
            names.append((f"pool{block}", layer))
            block, index = block + 1, 1
        else:  # pragma: no cover - not produced by build_vgg
            raise TypeError(f"unexpected layer {layer!r}")
    return names
