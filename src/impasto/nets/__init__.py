"""Generator architectures behind one protocol (:mod:`.protocol`), registered by name (:mod:`.registry`).

Importing this package registers the built-in architectures: ``johnson`` and ``johnson-small``
(:mod:`.johnson`, Johnson et al.'s transformation network) and ``texture`` (:mod:`.texture`,
Ulyanov et al.'s texture network) and ``multistyle`` (:mod:`.multistyle`, conditional instance norm),
then ``adain``, ``stylepredict`` and ``swap-inverse`` (:mod:`.swapinverse`, style swap's inverse network).
"""

from .johnson import JOHNSON_PRESETS, TransformerNet
from .norm import InstanceNorm, frozen_statistics
from .protocol import Generator, ImageGenerator, pad_to
from .registry import ARCHS, ArchSpec, build_net, get_arch, net_from_config, register_arch, twin_net, unregister_arch
from .texture import TextureNet, positional_noise
from .multistyle import MultiStyleNet, style_vector  # noqa: E402 (registers "multistyle" after the others)
from . import adain  # noqa: F401,E402 (registers "adain")
from . import stylepredict  # noqa: F401,E402 (registers "stylepredict")
from . import swapinverse  # noqa: F401,E402 (registers "swap-inverse")
from . import superres  # noqa: F401,E402 (registers "superres")

__all__ = [
    "TransformerNet",
    "TextureNet",
    "MultiStyleNet",
    "style_vector",
    "JOHNSON_PRESETS",
    "ARCHS",
    "ArchSpec",
    "Generator",
    "ImageGenerator",
    "build_net",
    "get_arch",
    "net_from_config",
    "register_arch",
    "unregister_arch",
    "twin_net",
    "pad_to",
    "positional_noise",
    "InstanceNorm",
    "frozen_statistics",
]
