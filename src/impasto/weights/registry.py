"""One record per pretrained checkpoint: where to get it, how to check it, how to feed it.

Names are ``arch.source`` (``vgg19.torchvision``). Every record carries the full SHA-256 and
byte size of the published file, so a download or a cached file is verified before use.

Where the numbers come from
---------------------------
torchvision names its files ``<arch>-<first 8 hex of the SHA-256>.pth`` (torch.hub's
``check_hash`` convention). The full digests and sizes below were taken from independent public
records of people who downloaded these exact URLs and hashed them (pinned checksums in several
unrelated projects, plus torch.hub/tqdm download logs showing the byte count); each agrees with the
8-hex prefix in its file name, which the registry test checks. They could not be re-checked by
downloading (impasto is developed offline); a wrong record would fail loudly (ChecksumError naming
both digests), never load a different file. No digest here is guessed.

Licences
--------
The torchvision code is BSD-3-Clause. The weights were trained on ImageNet-1k, whose terms of
access allow non-commercial research and education; whether weights derived from it may be used
commercially is not settled, so check before shipping them in a product. The Inception v3
checkpoint was ported by torchvision from Google's TensorFlow release (tensorflow/models, Apache-2.0).

Caffe VGG (``vgg19.caffe``) is deliberately absent: the converted files we know of
(jcjohnson/pytorch-vgg ``vgg19-d01eb7cb.pth``; pystiche ``vgg19-74e45263.pth``) are published
with a file-name tag only, no full SHA-256 or size, and no clear licence for the conversion. Add
them once those facts are known.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

from ..errors import WeightsError

__all__ = [
    "Preprocessing",
    "IMAGENET",
    "INCEPTION",
    "WeightSpec",
    "REGISTRY",
    "get_spec",
    "default_spec",
    "list_specs",
]


@dataclass(frozen=True)
class Preprocessing:
    """How a checkpoint expects its input: ``((image * scale)[channel_order] - mean) / std``.

    ``image`` is impasto's float RGB in [0, 1]; ``scale`` 255 and ``channel_order`` "BGR" describe
    Caffe-trained networks (mean given in that channel order).
    """

    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    channel_order: str = "RGB"
    scale: float = 1.0

    def __post_init__(self) -> None:
        if self.channel_order not in ("RGB", "BGR"):
            raise ValueError(f"channel_order must be 'RGB' or 'BGR', not {self.channel_order!r}")
        if len(self.mean) != 3 or len(self.std) != 3 or any(s <= 0 for s in self.std):
            raise ValueError("mean and std need three values each, std positive")


#: torchvision's ImageNet statistics for 0-1 RGB input
IMAGENET = Preprocessing((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
#: torchvision's Inception v3 checkpoint is used with ``transform_input=True``, which maps
#: ImageNet-normalised input back to ``(x - 0.5) / 0.5``; on 0-1 RGB that is mean = std = 0.5.
INCEPTION = Preprocessing((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))

_HEX64 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class WeightSpec:
    """A published checkpoint: its URLs (mirrors, tried in order), full SHA-256, size and licence."""

    name: str  # "vgg19.torchvision" (arch.source)
    arch: str  # "vgg19"
    filename: str  # the same name torch.hub uses, so files in its cache are reused
    urls: tuple[str, ...]
    sha256: str  # full lowercase hex digest of the file
    size: int | None  # bytes
    licence: str
    preprocessing: Preprocessing
    description: str
    layer_map: str = "torchvision"  # how state-dict keys map onto impasto's architectures

    def __post_init__(self) -> None:
        if not _HEX64.match(self.sha256):
            raise ValueError(f"{self.name}: sha256 must be the full 64-hex-digit digest, got {self.sha256!r}")
        if "." not in self.name or self.name.split(".", 1)[0] != self.arch:
            raise ValueError(f"{self.name}: weights names are 'arch.source' with arch {self.arch!r}")
        if not self.urls:
            raise ValueError(f"{self.name}: at least one URL is needed")
        if "/" in self.filename or "\\" in self.filename or self.filename.startswith("."):
            raise ValueError(f"{self.name}: filename must be a plain file name, got {self.filename!r}")

    @property
    def size_mb(self) -> float | None:
        """Size in MiB (for tables)."""
        return None if self.size is None else self.size / 2**20


_IMAGENET_LICENCE = "BSD-3-Clause (torchvision); trained on ImageNet-1k (non-commercial terms)"

REGISTRY: dict[str, WeightSpec] = {
    spec.name: spec
    for spec in (
        WeightSpec(
            name="vgg19.torchvision",
            arch="vgg19",
            filename="vgg19-dcbb9e9d.pth",
            urls=("https://download.pytorch.org/models/vgg19-dcbb9e9d.pth",),
            sha256="dcbb9e9dad569fff7a846263a77324fc34978fea2bfb039c012d710e1776ae44",
            size=574_673_361,
            licence=_IMAGENET_LICENCE,
            preprocessing=IMAGENET,
            description="torchvision VGG19 (VGG19_Weights.IMAGENET1K_V1); the classic style-transfer encoder",
        ),
        WeightSpec(
            name="vgg16.torchvision",
            arch="vgg16",
            filename="vgg16-397923af.pth",
            urls=("https://download.pytorch.org/models/vgg16-397923af.pth",),
            sha256="397923af8e79cdbb6a7127f12361acd7a2f83e06b05044ddf496e83de57a5bf0",
            size=553_433_881,
            licence=_IMAGENET_LICENCE,
            preprocessing=IMAGENET,
            description="torchvision VGG16 (VGG16_Weights.IMAGENET1K_V1); the loss network of Johnson et al.",
        ),
        # ResNet-50: IMAGENET1K_V1 (0676ba61), not V2 (11ad3fa6). V1 is what `pretrained=True`
        # gave for years, so it is what published ResNet style-transfer/perceptual-loss work used
        # and what users' torch hub caches most often already hold.
        WeightSpec(
            name="resnet50.torchvision",
            arch="resnet50",
            filename="resnet50-0676ba61.pth",
            urls=("https://download.pytorch.org/models/resnet50-0676ba61.pth",),
            sha256="0676ba61b6795bbe1773cffd859882e5e297624d384b6993f7c9e683e722fb8a",
            size=102_530_333,
            licence=_IMAGENET_LICENCE,
            preprocessing=IMAGENET,
            description="torchvision ResNet-50 (ResNet50_Weights.IMAGENET1K_V1)",
        ),
        WeightSpec(
            name="inception_v3.torchvision",
            arch="inception_v3",
            filename="inception_v3_google-0cc3c7bd.pth",
            urls=("https://download.pytorch.org/models/inception_v3_google-0cc3c7bd.pth",),
            sha256="0cc3c7bd75056d25e46cba549dc184522069b81e9787eff6df84f397bd52a5ef",
            size=108_949_747,
            licence="BSD-3-Clause (torchvision); ported from TensorFlow (Apache-2.0); ImageNet-1k (non-commercial terms)",
            preprocessing=INCEPTION,
            description="torchvision Inception v3 (Inception_V3_Weights.IMAGENET1K_V1, ported from TensorFlow)",
        ),
    )
}


def list_specs() -> list[WeightSpec]:
    """All records, in registry order."""
    return list(REGISTRY.values())


def get_spec(name: str) -> WeightSpec:
    """The record called ``name``; unknown names fail with a "did you mean" and the known names."""
    try:
        return REGISTRY[name]
    except KeyError:
        known = sorted(REGISTRY)
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.5)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise WeightsError(f"unknown weights {name!r}{hint}; known weights: {', '.join(known)}") from None


def default_spec(arch: str) -> WeightSpec | None:
    """The checkpoint ``weights="auto"`` uses for ``arch`` (the first record for it), or None."""
    for spec in REGISTRY.values():
        if spec.arch == arch:
            return spec
    return None
