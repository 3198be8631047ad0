"""Generator architectures: Johnson et al.'s transformation network and Ulyanov et al.'s texture network."""

from .johnson import JOHNSON_PRESETS, TransformerNet
from .norm import InstanceNorm, frozen_statistics
from .registry import ARCHS, build_net, net_from_config
from .texture import TextureNet, positional_noise

__all__ = ["TransformerNet", "TextureNet", "JOHNSON_PRESETS", "ARCHS", "build_net", "net_from_config", "positional_noise", "InstanceNorm", "frozen_statistics"]
