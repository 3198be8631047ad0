"""The impasto error tree.

Every error raised on purpose by impasto derives from :class:`ImpastoError` and also from the
matching builtin, so callers can catch either. ``exit_code`` tells the CLI what to return:
2 for bad input or usage, 1 for a failure at run time.
"""

from __future__ import annotations

import re
from typing import Mapping, Sequence

__all__ = [
    "ImpastoError",
    "UsageError",
    "ConfigError",
    "ImageError",
    "VideoError",
    "ImageTooLargeError",
    "ImageTooSmallError",
    "UnsupportedFormatError",
    "OutputError",
    "LayerError",
    "WeightsError",
    "ChecksumError",
    "DownloadError",
    "WeightsUnavailableError",
    "ModelFileError",
    "DeviceError",
    "RuntimeFailure",
    "Interrupted",
]


class ImpastoError(Exception):
    """Base of all impasto errors. ``exit_code`` is what the CLI exits with.

    Library messages name Python parameters (``"lr must be > 0, got 0"``); ``params`` lists the
    parameter names a message mentions, so a shell can spell them its own way
    (:meth:`with_flags`: ``"--lr must be > 0, got 0"`` on the command line).
    """

    exit_code: int = 2

    def __init__(self, *args: object, params: Sequence[str] | str = ()) -> None:
        super().__init__(*args)
        self.params: tuple[str, ...] = (params,) if isinstance(params, str) else tuple(params)

    def with_flags(self, flags: Mapping[str, str] | None = None) -> str:
        """The message with every parameter in ``params`` written as its command-line flag
        (``flags[name]``, else ``--name-with-dashes``)."""
        text = str(self)
        for name in self.params:
            flag = (flags or {}).get(name) or "--" + name.replace("_", "-")
            text = re.sub(rf"(?<![\w\-/\\.'\"]){re.escape(name)}(?![\w=/\\'\"])", flag, text)
        return text


class UsageError(ImpastoError, ValueError):
    """A parameter or combination of parameters is invalid."""


class ConfigError(UsageError):
    """A configuration value is out of range or of the wrong kind."""


class ImageError(ImpastoError, ValueError):
    """An input image cannot be read (missing, empty, corrupt, not an image, a directory)."""


class UnsupportedFormatError(ImageError):
    """The file is an image format impasto does not read (e.g. SVG)."""


class ImageTooLargeError(ImageError):
    """The image has more pixels than the decompression-bomb limit allows."""


class ImageTooSmallError(ImageError):
    """The image is smaller than the encoder's minimum side."""


class VideoError(ImpastoError, ValueError):
    """A video input cannot be used (not a video, no video stream, unreadable or zero frames,
    an absurd resolution); the message names the file."""


class OutputError(ImpastoError, OSError):
    """An output file cannot be written."""


class LayerError(UsageError, KeyError):
    """An unknown layer name was asked for."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class WeightsError(ImpastoError, OSError):
    """A weights file is missing, corrupt or of the wrong kind."""


class ChecksumError(WeightsError):
    """A downloaded or cached file does not match its recorded SHA-256."""


class DownloadError(WeightsError):
    """A download failed (offline, HTTP error, interrupted): a runtime failure (exit code 1)."""

    exit_code = 1


class WeightsUnavailableError(WeightsError):
    """Real pretrained weights were demanded but are not cached and cannot be downloaded."""


class ModelFileError(ImpastoError, ValueError):
    """A trained model file is corrupt or not an impasto model."""


class DeviceError(UsageError):
    """An unknown or unavailable compute device was asked for."""


class RuntimeFailure(ImpastoError, RuntimeError):
    """Something failed while running (exit code 1)."""

    exit_code = 1


class Interrupted(ImpastoError, KeyboardInterrupt):
    """The run was interrupted by the user; the current result was saved."""

    exit_code = 130
