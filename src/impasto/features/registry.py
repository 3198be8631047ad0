"""Registry of feature encoders: each record knows how to build the network, name its layers,
and which layers suit content and style by default."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Callable

from torch import nn

from ..errors import UsageError

__all__ = ["EncoderSpec", "ENCODERS", "get_encoder_spec", "register_encoder", "encoder_names"]


@dataclass(frozen=True)
class EncoderSpec:
    """How to build one encoder and which of its layers to use by default."""

    name: str
    build: Callable[[], nn.Module]
    stages: Callable[[nn.Module], list[tuple[str, nn.Module]]]
    default_content_layers: tuple[str, ...]
    default_style_layers: tuple[str, ...]
    min_side: int
    weights_arch: str
    description: str = ""
    #: the Johnson et al. (VGG16) layer set, where it applies
    perceptual_content_layers: tuple[str, ...] = ()
    perceptual_style_layers: tuple[str, ...] = ()


ENCODERS: dict[str, EncoderSpec] = {}


def register_encoder(spec: EncoderSpec) -> EncoderSpec:
    """Add ``spec`` to the registry (name must be new)."""
    if spec.name in ENCODERS:
        raise ValueError(f"encoder {spec.name!r} is already registered")
    ENCODERS[spec.name] = spec
    return spec


def encoder_names() -> list[str]:
    """Names of all registered encoders."""
    _ensure_builtin()
    return sorted(ENCODERS)


def get_encoder_spec(name: str) -> EncoderSpec:
    """The spec named ``name``; unknown names fail with a "did you mean"."""
    _ensure_builtin()
    try:
        return ENCODERS[name]
    except KeyError:
        close = difflib.get_close_matches(name, sorted(ENCODERS), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise UsageError(f"unknown encoder {name!r}{hint}; choose from {', '.join(sorted(ENCODERS))}") from None


_BUILTIN_DONE = False


def _ensure_builtin() -> None:
    global _BUILTIN_DONE
    if _BUILTIN_DONE:
        return
    _BUILTIN_DONE = True
    from . import vgg

    classic_style = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
    for arch, desc in (
        ("vgg19", "VGG19 (Simonyan & Zisserman), the classic style-transfer encoder (Gatys et al.)"),
        ("vgg16", "VGG16, the loss network of Johnson et al."),
        ("tiny_vgg", "VGG19 topology and layer names with 1/8 of the channels; for tests and quick previews"),
    ):
        register_encoder(
            EncoderSpec(
                name=arch,
                build=lambda arch=arch: vgg.build_vgg(arch),
                stages=vgg.vgg_stages,
                default_content_layers=("relu4_2",),
                default_style_layers=classic_style,
                min_side=16,
                weights_arch=arch,
                description=desc,
                perceptual_content_layers=("relu2_2",),
                perceptual_style_layers=("relu1_2", "relu2_2", "relu3_3" if arch == "vgg16" else "relu3_4", "relu4_3" if arch == "vgg16" else "relu4_4"),
            )
        )
    from . import inception, resnet

    register_encoder(
        EncoderSpec(
            name="resnet50",
            build=resnet.build_resnet50,
            stages=resnet.resnet_stages,
            default_content_layers=tuple(resnet.RESNET_LAYER_PRESETS["content"]),
            default_style_layers=tuple(resnet.RESNET_LAYER_PRESETS["style"]),
            min_side=resnet.RESNET_MIN_SIDE,
            weights_arch="resnet50",
            description="ResNet-50 (He et al.), torchvision block names",
        )
    )
    register_encoder(
        EncoderSpec(
            name="inception_v3",
            build=inception.build_inception_v3,
            stages=inception.inception_stages,
            default_content_layers=tuple(inception.INCEPTION_LAYER_PRESETS["content"]),
            default_style_layers=tuple(inception.INCEPTION_LAYER_PRESETS["style"]),
            min_side=inception.INCEPTION_MIN_SIDE,
            weights_arch="inception_v3",
            description="Inception v3 (Szegedy et al.), torchvision block names",
        )
    )
