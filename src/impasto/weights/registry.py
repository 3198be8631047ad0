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

Caffe VGG (``vgg19.caffe``, ``vgg16.caffe``)
--------------------------------------------
Justin Johnson's exact conversions of Simonyan & Zisserman's Caffe VGG models (jcjohnson/pytorch-vgg;
pytorch/vision#28), the weights neural-style, neural-style-pt and many papers' reference code use.
They expect BGR input in 0-255 with the BGR mean [103.939, 116.779, 123.68] subtracted (CAFFE).
Their state-dict keys are torchvision's for ``features.*`` (the classifier keys differ and are
never loaded), so they share the ``torchvision`` layer map and cannot be told from torchvision's
files by their keys: only the hash recognises them.

The published files (``vgg19-d01eb7cb.pth``, ``vgg16-00b39a1b.pth`` at the URLs below) have no
published full SHA-256 or size that we could find; these records therefore verify a download by
torch.hub's own ``check_hash`` rule, the 8-hex SHA-256 prefix in the file name (``check="prefix"``,
shown as such by ``impasto weights list``). What users of neural-style-pt actually hold is
different: its ``models/download_models.py`` renames the classifier keys and re-saves the file
under the same name, so those bytes have another hash. Two independent public copies of that
re-saved file (a Git LFS pointer in github.com/JustyJump/cns, models/; and the Hugging Face Space
AfrodreamsAI/afrodreams) agree on its full SHA-256 and size, recorded below as ``variants`` and
verified exactly. A re-save by another PyTorch version may differ byte-wise; such a file is not
recognised and needs ``--preprocessing caffe``.

Licence of the Caffe models: Creative Commons Attribution 4.0 (Simonyan & Zisserman, Oxford VGG,
robots.ox.ac.uk/~vgg/research/very_deep/); the PyTorch conversion states no licence of its own
(jcjohnson/pytorch-vgg#11 asks, unanswered); trained on ImageNet-1k (non-commercial terms).
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
    "CAFFE",
    "PREPROCESSING_NAMES",
    "preprocessing_named",
    "KnownFile",
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
#: Caffe-trained VGG (Simonyan & Zisserman): BGR, 0-255, minus the BGR mean, no scaling
CAFFE = Preprocessing((103.939, 116.779, 123.68), (1.0, 1.0, 1.0), channel_order="BGR", scale=255.0)

#: the values of ``--preprocessing`` (besides ``auto``: take it from the checkpoint's record)
PREPROCESSING_NAMES = ("caffe", "torchvision")


def preprocessing_named(name: str, arch: str) -> Preprocessing:
    """``caffe`` -> CAFFE; ``torchvision`` -> torchvision's convention for ``arch`` (INCEPTION for
    inception_v3, else IMAGENET). Unknown names raise ValueError naming the choices."""
    if name == "caffe":
        return CAFFE
    if name == "torchvision":
        return INCEPTION if arch == "inception_v3" else IMAGENET
    raise ValueError(f"preprocessing must be one of {', '.join(PREPROCESSING_NAMES)}, not {name!r}")


_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_HEX8 = re.compile(r"^[0-9a-f]{8}$")


@dataclass(frozen=True)
class KnownFile:
    """Another byte-exact file holding a record's weights (e.g. a re-save by another tool)."""

    sha256: str  # full digest
    size: int  # bytes
    source: str  # where it comes from and where its digest was found

    def __post_init__(self) -> None:
        if not _HEX64.match(self.sha256) or self.size <= 0:
            raise ValueError(f"known file {self.source!r}: needs the full 64-hex SHA-256 and a size")


@dataclass(frozen=True)
class WeightSpec:
    """A published checkpoint: its URLs (mirrors, tried in order), full SHA-256, size and licence."""

    name: str  # "vgg19.torchvision" (arch.source)
    arch: str  # "vgg19"
    filename: str  # the same name torch.hub uses, so files in its cache are reused
    urls: tuple[str, ...]
    sha256: str  # full lowercase hex digest of the file (check="sha256"), or its 8-hex prefix (check="prefix")
    size: int | None  # bytes (None: unknown)
    licence: str
    preprocessing: Preprocessing
    description: str
    layer_map: str = "torchvision"  # how state-dict keys map onto impasto's architectures
    #: "sha256": the full digest is known and checked; "prefix": only torch.hub's 8-hex file-name
    #: prefix is published, and a file is accepted when its SHA-256 starts with it
    check: str = "sha256"
    #: other files known to hold these weights byte-exactly (verified by full SHA-256 and size)
    variants: tuple[KnownFile, ...] = ()

    def __post_init__(self) -> None:
        if self.check not in ("sha256", "prefix"):
            raise ValueError(f"{self.name}: check must be 'sha256' or 'prefix', got {self.check!r}")
        if self.check == "sha256" and not _HEX64.match(self.sha256):
            raise ValueError(f"{self.name}: sha256 must be the full 64-hex-digit digest, got {self.sha256!r}")
        if self.check == "prefix" and not (_HEX8.match(self.sha256) and f"-{self.sha256}." in self.filename):
            raise ValueError(f"{self.name}: a prefix check needs the 8 hex digits of the file name, got {self.sha256!r}")
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

    def published_matches(self, size: int, digest: str | None) -> bool:
        """Whether a file of ``size`` bytes and SHA-256 ``digest`` is the published file
        (``digest=None``: judge by size only)."""
        if self.size is not None and size != self.size:
            return False
        if digest is None:
            return True
        return digest.startswith(self.sha256) if self.check == "prefix" else digest == self.sha256

    def size_fits(self, size: int) -> bool:
        """Whether ``size`` is the size of the published file or of a known variant (the cheap test)."""
        return self.published_matches(size, None) or any(v.size == size for v in self.variants)

    def accepts(self, size: int, digest: str) -> bool:
        """Whether a file of ``size`` bytes and SHA-256 ``digest`` holds these weights."""
        return self.published_matches(size, digest) or any(v.size == size and v.sha256 == digest for v in self.variants)


_IMAGENET_LICENCE = "BSD-3-Clause (torchvision); trained on ImageNet-1k (non-commercial terms)"
_CAFFE_LICENCE = "CC BY 4.0 (Simonyan & Zisserman, Oxford VGG); conversion unlicensed (jcjohnson/pytorch-vgg); ImageNet-1k (non-commercial terms)"
_JCJ = ("https://web.eecs.umich.edu/~justincj/models/", "https://s3-us-west-2.amazonaws.com/jcjohns-models/")
_NSPT = "neural-style-pt models/download_models.py re-save (classifier keys renamed); digest from Git LFS pointers in github.com/JustyJump/cns and huggingface.co/spaces/AfrodreamsAI/afrodreams"

def _caffe_vgg(arch: str, prefix: str, resaved: KnownFile, note: str = "") -> WeightSpec:
    """A Caffe VGG record: J. Johnson's conversion, verified by the hash prefix in its published
    name (its full hash is not published), plus neural-style-pt's re-saved copy by full hash."""
    return WeightSpec(
        name=f"{arch}.caffe",
        arch=arch,
        filename=f"{arch}-{prefix}.pth",
        urls=tuple(f"{base}{arch}-{prefix}.pth" for base in _JCJ),
        sha256=prefix,
        size=None,
        check="prefix",
        variants=(resaved,),
        licence=_CAFFE_LICENCE,
        preprocessing=CAFFE,
        description=f"Caffe {arch.upper()} (Simonyan & Zisserman) converted by J. Johnson{note} (BGR, 0-255, mean subtracted)",
    )


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
        _caffe_vgg("vgg19", "d01eb7cb", KnownFile("dd893d447ece014ad32d71b8d32b1e0b5c09b912a2866990c286fdeebd368d74", 574_679_411, _NSPT), "; neural-style's encoder"),
        _caffe_vgg("vgg16", "00b39a1b", KnownFile("2007cdad2519a9bbecdf5cd3c54145237502349a194e0d0a41a826e5a277c187", 553_438_853, _NSPT)),
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
