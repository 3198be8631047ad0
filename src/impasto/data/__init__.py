"""Training data: folders of photographs as datasets, with a seeded, resumable sampler."""

from .folder import IMAGE_EXTENSIONS, EpochSampler, PhotoFolder, default_workers, make_loader

__all__ = ["PhotoFolder", "EpochSampler", "IMAGE_EXTENSIONS", "default_workers", "make_loader"]
