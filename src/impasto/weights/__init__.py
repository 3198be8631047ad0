"""Pretrained checkpoints: a registry of records, a verified cache, and ``weights=`` resolution.

>>> from impasto.weights import get_spec, download, resolve_weights
>>> path = download(get_spec("vgg19.torchvision"))          # doctest: +SKIP
>>> resolved = resolve_weights("auto", "vgg19")             # doctest: +SKIP
"""

from .registry import (
    CAFFE,
    IMAGENET,
    INCEPTION,
    PREPROCESSING_NAMES,
    REGISTRY,
    KnownFile,
    Preprocessing,
    WeightSpec,
    default_spec,
    get_spec,
    list_specs,
    preprocessing_named,
)
from .resolve import ResolvedWeights, adapt_state_dict, resolve_weights
from .store import (
    cache_dir,
    cache_path,
    cached_path,
    download,
    file_sha256,
    identify,
    import_file,
    load_state_dict,
    sha256_file,
    verify,
)

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
    "cache_dir",
    "cache_path",
    "sha256_file",
    "file_sha256",
    "verify",
    "cached_path",
    "download",
    "import_file",
    "identify",
    "load_state_dict",
    "ResolvedWeights",
    "resolve_weights",
    "adapt_state_dict",
]
