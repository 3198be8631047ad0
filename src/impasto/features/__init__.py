"""Feature encoders with named layers (VGG16/19, ResNet-50, Inception v3, tiny_vgg)."""

from .extractor import DEFAULT_DEVICE, FeatureExtractor, build_encoder, random_init, resolve_device
from .registry import ENCODERS, EncoderSpec, encoder_names, get_encoder_spec, register_encoder

__all__ = [
    "DEFAULT_DEVICE",
    "FeatureExtractor",
    "build_encoder",
    "random_init",
    "resolve_device",
    "ENCODERS",
    "EncoderSpec",
    "encoder_names",
    "get_encoder_spec",
    "register_encoder",
]
