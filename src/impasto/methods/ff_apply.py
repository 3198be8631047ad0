"""Applying a trained feed-forward model: one image in memory (the registered ``apply`` method) or
files and folders in a batch (:func:`apply_model`); both go through :func:`stylise_photo`.

A self-describing model file (``model.pt``, or an exported ``.onnx``) is opened without any flags
(:class:`ModelSession`); images are stylised whole or tile by tile (see :mod:`.ff_tiling`: the
whole image's instance-norm statistics are computed exactly in streaming passes over the tiles,
so tiled output equals the whole-image output, with PyTorch and with ONNX Runtime). A texture
model (trained with ``texture=True``) takes no image: it synthesises ``config.size``.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import torch

from .._version import __version__
from ..config import check_rules, config_from_mapping, config_to_dict
from ..errors import ConfigError, ImageError, ModelFileError, OutputError, UsageError
from ..features import DEFAULT_DEVICE
from ..image.io import DEFAULT_MAX_PIXELS
from ..precision import DEFAULT_PRECISION, PRECISION_CHOICES, PRECISION_HELP, PRECISIONS, is_precision, normalise_precision, precision_name
from ..progress import Event, MessageEvent, StageEvent, StepEvent, emit
from .ff_model import load_model, resolve_model_path
from .ff_onnx import choose_runtime, onnx_for
from .ff_styles import model_styles, parse_style_mix, parse_weights, style_choice
from .ff_tiling import OnnxRunner, TorchRunner, auto_tile, stylise_tensor
from .registry import Input
from .result import Result

__all__ = ["ApplyConfig", "ApplyResult", "ApplyMethod", "ModelSession", "COLOR_MODES", "RUNTIMES", "OUTPUT_FORMATS", "apply_model", "parse_size", "stylise_photo"]

COLOR_MODES = ("none", "luminance", "histogram")
RUNTIMES = ("auto", "torch", "onnx")
OUTPUT_FORMATS = ("png", "jpg", "webp", "tif")


def _h(text: str, **extra: Any) -> dict[str, Any]:
    return {"help": text, **extra}


@dataclass(frozen=True)
class ApplyConfig:
    """Options of ``impasto apply``."""

    edge: int = field(default=0, metadata=_h("resize so the longest side is this many px before stylising (0 = keep the size)"))
    strength: float = field(default=1.0, metadata=_h("blend with the photo: 0 = the photo, 1 = fully stylised"))
    preserve_colors: str = field(default="none", metadata=_h("keep the photo's colours: luminance (stylised luminance + photo chroma) or histogram (match the result's colour statistics to the photo)", choices=COLOR_MODES))
    tile: int = field(default=0, metadata=_h("tile side in px (the network's memory stays constant); 0 = automatic: images up to --whole-pixels run whole, bigger ones in tiles of at most --max-tile"))
    whole_pixels: int = field(default=1024 * 1024, metadata=_h("automatic tiling: images with at most this many pixels run whole (about 0.9 GB for johnson at 1024x1024)"))
    max_tile: int = field(default=768, metadata=_h("automatic tiling: largest tile side in px"))
    overlap: int = field(default=64, metadata=_h("automatic tile size and --stats-edge mode: overlap between tiles in px (exact tiles always extend the network's receptive radius beyond their core)"))
    stats_edge: int = field(default=0, metadata=_h("tiled mode: 0 = exact whole-image instance-norm statistics (streamed over the tiles; tiles equal the whole-image result); N = approximate them on a copy downscaled to N px (faster; torch runtime only)"))
    runtime: str = field(default="auto", metadata=_h("inference engine: torch (PyTorch), onnx (ONNX Runtime on the CPU; a .pt model is exported once and cached), auto: onnx for .onnx files, and for johnson and johnson-small models on the CPU in fp32 without torch-only options when onnxruntime is installed and the process runs glibc's own allocator (the Python API, service, video: same output, ~0.87x the time; impasto apply tunes the allocator, and PyTorch is the faster one then); torch otherwise", choices=RUNTIMES))
    device: str = field(default=DEFAULT_DEVICE, metadata=_h("torch runtime device: cpu, auto, cuda, cuda:N, mps"))
    channels_last: bool | None = field(default=None, metadata=_h("torch runtime: channels-last memory format; auto = on for CPUs (measured: 0.85x the time in fp32 and 0.3x in bf16 for the johnson network at 512 px), off for GPUs (where it is worth trying)", default_shown="auto"))
    precision: str = field(default=DEFAULT_PRECISION, metadata=_h("torch runtime: " + PRECISION_HELP, choices=PRECISION_CHOICES))
    seed: int = field(default=0, metadata=_h("noise seed for texture networks (different seeds, different textures)"))
    style_index: int = field(default=0, metadata=_h("multi-style models: which style (0-based; the model file lists them: impasto apply MODEL --list-styles)", metavar="K"))
    style_mix: str = field(default="", metadata=_h("multi-style models: interpolate styles, INDEX_OR_NAME:WEIGHT,... e.g. 0:0.3,2:0.7 (weights are normalised)", metavar="MIX"))
    sheet: bool = field(default=False, metadata=_h("write one contact sheet per photo: the photo and every style of the model (or every --style painting), labelled"))
    alpha: float = field(default=1.0, metadata=_h("AdaIN and stylepredict models: content-style trade-off, 0 = the photo's own features decoded (stylepredict: the photo's own style embedding), 1 = fully the painting's style"))
    style_weights: str = field(default="", metadata=_h("AdaIN models with several --style paintings: their weights, e.g. 0.7,0.3 (default: equal)", metavar="W,W,..."))
    style_edge: int = field(default=512, metadata=_h("AdaIN models: longest side of a painting when its statistics are measured (0 = as is)"))
    encoder_weights: str = field(default="", metadata=_h("AdaIN models: encoder weights (name or file) if not the ones recorded in the model; they must be the weights the decoder was trained with", metavar="NAME|FILE"))
    size: str = field(default="512x512", metadata=_h("texture synthesis (--texture models, no input images): output size HxW", metavar="HxW"))
    suffix: str = field(default="", metadata=_h("added to each output name before the extension, e.g. _styled"))
    format: str = field(default="png", metadata=_h("output format", choices=OUTPUT_FORMATS))
    bit_depth: int = field(default=8, metadata=_h("bits per channel (16 for png/tif)", choices=(8, 16)))
    max_pixels: int = field(default=DEFAULT_MAX_PIXELS, metadata=_h("refuse input images with more pixels than this (decompression-bomb guard)"))

    def __post_init__(self) -> None:
        check_rules([
            (self.edge >= 0, "edge", f"edge must be >= 0, got {self.edge}"),
            (0.0 <= self.strength <= 1.0, "strength", f"strength must be in [0, 1], got {self.strength}"),
            (self.tile == 0 or self.tile >= 16, "tile", f"tile must be 0 (automatic) or >= 16 px, got {self.tile}"),
            (self.max_tile >= 64, "max_tile", f"max_tile must be >= 64 px, got {self.max_tile}"),
            (self.whole_pixels >= 0, "whole_pixels", f"whole_pixels must be >= 0, got {self.whole_pixels}"),
            (self.tile or self.overlap < self.max_tile, ("overlap", "max_tile"), f"overlap ({self.overlap}) must be smaller than max_tile ({self.max_tile})"),
            (self.overlap >= 0, "overlap", f"overlap must be >= 0, got {self.overlap}"),
            (self.tile == 0 or self.overlap < self.tile, ("overlap", "tile"), f"overlap ({self.overlap}) must be smaller than tile ({self.tile})"),
            (self.stats_edge == 0 or self.stats_edge >= 16, "stats_edge", f"stats_edge must be 0 (exact) or >= 16 px, got {self.stats_edge}"),
            (self.preserve_colors in COLOR_MODES, "preserve_colors", f"preserve_colors {self.preserve_colors!r}: choose from {', '.join(COLOR_MODES)}"),
            (self.runtime in RUNTIMES, "runtime", f"runtime {self.runtime!r}: choose from {', '.join(RUNTIMES)}"),
            (is_precision(self.precision), "precision", f"precision {self.precision!r}: choose from {', '.join(PRECISIONS)}"),
            (self.precision not in ("bf16", "bfloat16") or self.runtime != "onnx", ("precision", "runtime"), "precision bf16 needs runtime torch"),
            (self.format in OUTPUT_FORMATS, "format", f"format {self.format!r}: choose from {', '.join(OUTPUT_FORMATS)}"),
            (self.bit_depth in (8, 16), "bit_depth", f"bit_depth must be 8 or 16, got {self.bit_depth}"),
            (self.bit_depth == 8 or self.format in ("png", "tif"), ("bit_depth", "format"), "bit_depth 16 needs format png or tif"),
            ("/" not in self.suffix and "\\" not in self.suffix, "suffix", f"suffix {self.suffix!r} must not contain a path separator"),
            (self.style_index >= 0, "style_index", f"style_index must be >= 0, got {self.style_index}"),
            (0.0 <= self.alpha <= 1.0, "alpha", f"alpha must be in [0, 1], got {self.alpha}"),
            (self.style_edge == 0 or self.style_edge >= 16, "style_edge", f"style_edge must be 0 (as is) or >= 16 px, got {self.style_edge}"),
        ])
        parse_size(self.size)
        object.__setattr__(self, "precision", normalise_precision(self.precision))  # float32/bfloat16 are accepted spellings
        parse_style_mix(self.style_mix)
        parse_weights(self.style_weights)


def parse_size(text: str) -> tuple[int, int]:
    """``"512x768"`` (height x width) or ``"512"`` (square) -> (h, w)."""
    parts = str(text).lower().replace("×", "x").split("x")
    try:
        values = [int(p) for p in parts]
    except ValueError:
        raise ConfigError(f"size {text!r}: expected HxW in pixels, e.g. 512x768", params="size") from None
    if len(values) == 1:
        values = values * 2
    if len(values) != 2 or min(values) < 16:
        raise ConfigError(f"size {text!r}: expected HxW with both sides >= 16 px", params="size")
    return values[0], values[1]


@dataclass
class ApplyResult:
    """What ``apply_model`` wrote and which inputs failed (with the reason)."""

    written: list[Path] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """True when every input was written."""
        return not self.failed


def _emit_warning(callback: Callable[[Event], None] | None, text: str) -> None:
    emit(callback, MessageEvent(text, level="warning"))


class ModelSession:
    """A model opened for applying: its runner (PyTorch or ONNX Runtime), its description
    (``meta``), the tile cell (the network's ``multiple``) and whether it takes a photo.

    Styles: a multi-style model gets the style vector of ``config.style_index`` / ``style_mix``;
    an arbitrary-style (AdaIN) model needs ``styles`` (paintings: paths, LoadedImages or
    tensors), mixed by ``config.style_weights``, optionally placed by ``masks`` (one grey map per
    painting, white where it applies), and prepared for each photo by :meth:`prepare`.

    ``config.runtime="auto"`` picks ONNX Runtime or PyTorch (:func:`.ff_onnx.choose_runtime`;
    ``runtime`` and ``runtime_reason`` say which and why); a ``.pt`` model runs with ONNX Runtime
    through its cached export (:func:`.ff_onnx.onnx_for`). Where ``auto`` chose ONNX Runtime but
    the export or its loading fails, the session warns and runs PyTorch; an explicit ``onnx`` fails.

    Use as a context manager (an ONNX file exported for this run only is deleted at the end).
    """

    def __init__(
        self,
        model_path: str | os.PathLike[str],
        config: ApplyConfig,
        *,
        callback: Callable[[Event], None] | None = None,
        styles: Sequence[Any] = (),
        masks: Sequence[Any] = (),
    ) -> None:
        self.model_file = resolve_model_path(model_path)
        onnx_file = self.model_file.suffix.lower() == ".onnx"
        peek = _peek_model(self.model_file) if not onnx_file and (config.runtime == "auto" or config.encoder_weights) else None
        #: the runtime used (``torch`` or ``onnx``) and why (see :func:`.ff_onnx.choose_runtime`)
        self.runtime, self.runtime_reason = choose_runtime(self.model_file, None if peek is None else peek.get("arch"), config)
        self._tmp: Any = None
        self.runner: Any = None
        if self.runtime == "onnx":
            if not self.model_file.exists():
                raise ModelFileError(f"{self.model_file}: no such model file")
            try:
                onnx_path, self.meta, self._tmp = onnx_for(self.model_file, callback=callback)
                self.runner = OnnxRunner(onnx_path, self.meta, config)
            except Exception as exc:  # noqa: BLE001 - auto's choice must not fail a run that PyTorch can do
                if config.runtime != "auto" or onnx_file or isinstance(exc, ConfigError):  # a bad setting (IMPASTO_ONNX_CACHE_MAX) is the user's to fix
                    raise
                self.close()
                reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
                _emit_warning(callback, f"{self.model_file}: ONNX Runtime could not be used ({reason}); running with PyTorch")
                self.runtime, self.runtime_reason = "torch", f"ONNX Runtime could not be used: {reason}"
        if self.runtime == "torch":
            overrides = {"weights": config.encoder_weights} if config.encoder_weights else None
            net_config = None if peek is None else dict(peek.get("net_config") or {})
            if overrides and net_config is not None and "weights_id" not in net_config:
                raise ConfigError(f"encoder_weights: {self.model_file} has no encoder of its own (encoder_weights is for AdaIN models)", params="encoder_weights")
            loaded = load_model(self.model_file, device=config.device, net_overrides=overrides)
            self.meta = loaded.meta
            self.runner = TorchRunner(loaded, config)
        self.cell = int(self.runner.multiple)
        net = self.runner.net
        self.takes_photo = "content" in net.takes
        self.style_vector = style_choice(self.meta, config)
        #: paints in the style of any painting given at run time (AdaIN)
        self.arbitrary = "style" in net.takes and self.style_vector is None
        if self.style_vector is not None:
            self.runner.style = net.prepare_style(self.style_vector)
        self.paintings: list[tuple[torch.Tensor, str]] = []
        self.masks: list[tuple[torch.Tensor, str]] = []
        self.weights: list[float] = []
        self._prepared: Any = None  # what the current runner.style was prepared for
        if self.arbitrary:
            self._load_paintings(styles, masks, config)
        elif styles or masks:
            what = "style paintings" if styles else "style_mask maps"
            raise UsageError(f"{self.model_file}: {what} are for arbitrary-style (AdaIN) models; this {self.meta.get('arch')} model has its styles built in", params="style" if styles else "style_mask")

    def _load_paintings(self, styles: Sequence[Any], masks: Sequence[Any], config: ApplyConfig) -> None:
        from ..image.resize import resize_to_edge
        from .inputs import load_input

        if not styles:
            raise UsageError(f"{self.model_file}: {'an AdaIN' if self.meta.get('arch') == 'adain' else 'a ' + str(self.meta.get('arch'))} model needs a painting to copy (style)", params="style")
        for src in styles:
            image, _, info = load_input(src, "style", config.max_pixels)
            if config.style_edge and max(image.shape[-2:]) != config.style_edge:
                image = resize_to_edge(image, config.style_edge)
            self.paintings.append((image, Path(info["path"]).name if info.get("path") else "painting"))
        self.weights = parse_weights(config.style_weights)
        if self.weights and len(self.weights) != len(self.paintings):
            raise ConfigError(f"style_weights: {len(self.weights)} weights for {len(self.paintings)} style paintings", params="style_weights")
        if masks and len(masks) != len(self.paintings):
            raise ConfigError(f"style_mask: {len(masks)} masks for {len(self.paintings)} style paintings (give one per painting)", params="style_mask")
        for src in masks:
            image, _, info = load_input(src, "style mask", config.max_pixels)
            self.masks.append((image.mean(dim=1, keepdim=True), str(info.get("path") or "mask")))

    def prepare(self, photo: torch.Tensor, config: ApplyConfig) -> None:
        """Set the style of an arbitrary-style model for ``photo`` (its paintings' statistics,
        recoloured to the photo for ``preserve_colors="histogram"``, masks at its size)."""
        if not self.arbitrary:
            return
        # a network whose alpha mixes in the photo's own style (stylepredict) needs the photo
        with_photo = bool(getattr(self.runner.net, "alpha_needs_photo", False)) and config.alpha < 1.0
        # the paintings' statistics depend on the photo only through its colours (histogram), its
        # size (masks) and, with_photo, the photo itself: otherwise they are measured once per
        # session (video frames, batches)
        key = ((config.preserve_colors == "histogram" or with_photo) and id(photo), tuple(photo.shape[-2:]) if self.masks else None, config.alpha, tuple(self.weights), len(self.paintings), id(self.paintings[0][0]))
        if key[0] is False and self._prepared == key:
            return
        from ..image.color import match_color
        from ..image.resize import resize_mask

        images = [p for p, _ in self.paintings]
        if config.preserve_colors == "histogram":  # the paintings take the photo's colours (Gatys et al. 2017)
            images = [match_color(p, photo) for p in images]
        masks = None
        if self.masks:
            h, w = photo.shape[-2:]
            fitted = []
            for m, name in self.masks:
                mh, mw = m.shape[-2:]
                if abs((mw / mh) / (w / h) - 1) > 0.02:
                    raise ImageError(f"{name}: mask is {mw}x{mh} but the photo is {w}x{h}; masks must have the photo's aspect ratio")
                fitted.append(resize_mask(m, (h, w)) if (mh, mw) != (h, w) else m)
            masks = torch.cat(fitted, dim=0).clamp(0, 1)  # where none covers the photo, it keeps its own features
        device = getattr(self.runner, "device", torch.device("cpu"))
        extra = {"content": photo.to(device)} if with_photo else {}
        self.runner.style = self.runner.net.prepare_style([i.to(device) for i in images], self.weights or None, alpha=config.alpha, masks=None if masks is None else masks.to(device), **extra)
        self._prepared = key

    def describe(self, method: str, config: ApplyConfig) -> dict[str, Any]:
        """The metadata every output of this model carries."""
        styles: dict[str, Any] = {}
        if self.style_vector is not None:
            names = {int(x["index"]): x.get("name") for x in model_styles(self.meta)}
            styles["style_weights"] = {f"{k}:{names.get(k, k)}": round(float(v), 6) for k, v in enumerate(self.style_vector[0].tolist()) if v}
        if self.arbitrary:
            styles.update(paintings=[name for _, name in self.paintings], style_weights=self.weights or None, alpha=config.alpha, masks=[name for _, name in self.masks] or None)
        return {
            "impasto": __version__,
            "method": method,
            "arch": self.meta.get("arch"),
            "model": self.model_file.name,
            "style": self.meta.get("style_name"),
            "style_sha256": self.meta.get("style_sha256"),
            "steps": self.meta.get("steps"),
            "licence": self.meta.get("licence", ""),
            "runtime": self.runtime,
            "runtime_reason": self.runtime_reason,
            "precision": precision_name(getattr(self.runner, "autocast", None), getattr(self.runner, "residual_dtype", None)),
            "strength": config.strength,
            "preserve_colors": config.preserve_colors,
            **styles,
        }

    def close(self) -> None:
        """Delete the ONNX file exported for this session only (the cache was not writable), if any."""
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> ModelSession:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def stylise_photo(session: ModelSession, photo: torch.Tensor, config: ApplyConfig) -> tuple[torch.Tensor, tuple[int, int], int]:
    """One photo (1x3xHxW in [0, 1]) through the model: resized to ``config.edge``, whole or in
    tiles, colours preserved and blended by ``config.strength``. Returns (image, size, tile)."""
    from ..image.color import match_color, transfer_luminance
    from ..image.resize import resize_to_edge

    if config.edge and max(photo.shape[-2:]) != config.edge:
        photo = resize_to_edge(photo, config.edge)
    session.prepare(photo, config)
    size = (int(photo.shape[-2]), int(photo.shape[-1]))
    tile = config.tile or auto_tile(size, config.max_tile, config.overlap, session.cell, whole_pixels=config.whole_pixels)
    y = stylise_tensor(session.runner, photo, size, tile=tile, overlap=config.overlap, stats_edge=config.stats_edge, cell=session.cell)
    if config.preserve_colors == "luminance":
        y = transfer_luminance(y, photo)
    elif config.preserve_colors == "histogram":
        y = match_color(y, photo)
    if config.strength < 1.0:
        y = config.strength * y + (1.0 - config.strength) * photo
    return y.clamp(0, 1), size, tile


def synthesise(session: ModelSession, config: ApplyConfig) -> tuple[torch.Tensor, tuple[int, int]]:
    """A texture model's image of ``config.size`` from noise seeded by ``config.seed``."""
    size = parse_size(config.size)
    tile = config.tile or auto_tile(size, config.max_tile, config.overlap, session.cell, whole_pixels=config.whole_pixels)
    return stylise_tensor(session.runner, None, size, tile=tile, overlap=config.overlap, stats_edge=config.stats_edge, cell=session.cell), size


def _peek_model(model_file: Path) -> dict[str, Any] | None:
    """A model file's description (``arch``, ``net_config``, ...) without reading its weights or
    building the network (None if unreadable: the real load then says why)."""
    try:
        data = torch.load(model_file, map_location="cpu", weights_only=True, mmap=True)
        return {k: v for k, v in data.items() if k != "state_dict"} if isinstance(data, dict) else None
    except Exception:  # noqa: BLE001
        return None


def _no_images_message(model_file: Path) -> str:
    return f"{model_file}: a texture-synthesis model takes no input images; set the output dimensions with size HxW"


def _expand_inputs(inputs: Sequence[str | os.PathLike[str]]) -> list[tuple[Path, Path]]:
    """(file, relative output stem) for every input file; folders are scanned recursively."""
    from ..data.folder import IMAGE_EXTENSIONS

    items: list[tuple[Path, Path]] = []
    for raw in inputs:
        p = Path(raw)
        if p.is_dir():
            files = sorted((f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS), key=lambda f: f.relative_to(p).as_posix())
            items += [(f, f.relative_to(p).with_suffix("")) for f in files]
        else:
            items.append((p, Path(p.stem)))
    return items


def apply_model(
    model_path: str | os.PathLike[str],
    images: Sequence[str | os.PathLike[str]] | str | os.PathLike[str] = (),
    out_dir: str | os.PathLike[str] = "styled",
    *,
    config: ApplyConfig | None = None,
    callback: Callable[[Event], None] | None = None,
    styles: Sequence[Any] = (),
    masks: Sequence[Any] = (),
    **overrides: Any,
) -> ApplyResult:
    """Stylise ``images`` (files and/or folders) with a trained model into ``out_dir``.

    Outputs are ``OUT_DIR/<stem><suffix>.<format>`` (a folder input keeps its subfolders), with
    the input's alpha channel re-attached and the parameters stored as metadata. A texture
    model (trained with ``texture=True``) needs no images: it writes ``texture_<seed>.<format>``
    at ``config.size``. One bad input file raises its ImageError; in a batch, bad files are
    skipped, reported in ``ApplyResult.failed`` and as warnings, and the rest is written.
    Keyword ``overrides`` (edge=, strength=, tile=, runtime=, ...) replace fields of ``config``.
    ``styles``/``masks``: paintings (and their region maps) for arbitrary-style (AdaIN) models.
    ``config.sheet``: one contact sheet per photo (every style of the model, or every painting)
    named ``<stem>_sheet.<format>`` instead of the stylised image.
    """
    from ..image.io import load_image, save_image

    config = config or ApplyConfig()
    if overrides:
        config = config_from_mapping(ApplyConfig, {**config_to_dict(config), **overrides})
    if isinstance(images, (str, os.PathLike)):
        images = [images]
    with ModelSession(model_path, config, callback=callback, styles=styles, masks=masks) as session:
        out = Path(out_dir)
        if out.exists() and not out.is_dir():
            raise OutputError(f"{out}: exists and is not a folder")
        out.mkdir(parents=True, exist_ok=True)
        base_meta = session.describe("feedforward", config)
        result = ApplyResult()
        t0 = time.perf_counter()
        ext = "." + config.format

        if not session.takes_photo:
            if images:
                raise UsageError(_no_images_message(session.model_file), params="size")
            y, size = synthesise(session, config)
            target = out / f"texture_{config.seed}{config.suffix}{ext}"
            save_image(target, y, metadata={**base_meta, "seed": config.seed, "size": list(size)}, bit_depth=config.bit_depth)
            result.written.append(target)
            result.seconds = time.perf_counter() - t0
            return result

        items = _expand_inputs(images)
        if not items:
            raise UsageError("no input images (give image files or folders)" if not images else f"no images found in {', '.join(str(i) for i in images)}")
        single = len(items) == 1 and not Path(images[0]).is_dir()
        taken: set[Path] = set()
        emit(callback, StageEvent(0, 1, "stylising", len(items)))
        for n, (src, rel) in enumerate(items, 1):
            stem = f"{rel.name}_sheet" if config.sheet else rel.name
            target = out / rel.parent / f"{stem}{config.suffix}{ext}"
            k = 1
            while target in taken:
                target = out / rel.parent / f"{stem}{config.suffix}_{k}{ext}"
                k += 1
            taken.add(target)
            try:
                img = load_image(src, max_pixels=config.max_pixels)
            except ImageError as exc:
                if single:
                    raise
                result.failed.append((str(src), str(exc)))
                _emit_warning(callback, str(exc))
                emit(callback, StepEvent(step=n, total=len(items), losses={}))
                continue
            if config.sheet:
                from .ff_sheet import contact_sheet

                y, labels = contact_sheet(session, img.image, config)
                target.parent.mkdir(parents=True, exist_ok=True)
                save_image(target, y, metadata={**base_meta, "source": src.name, "sheet": labels}, bit_depth=config.bit_depth)
            else:
                y, size, tile = stylise_photo(session, img.image, config)
                target.parent.mkdir(parents=True, exist_ok=True)
                save_image(target, y, alpha=img.alpha, metadata={**base_meta, "source": src.name, "size": list(size), "tile": tile}, bit_depth=config.bit_depth)
            result.written.append(target)
            emit(callback, StepEvent(step=n, total=len(items), losses={}))
    result.seconds = time.perf_counter() - t0
    return result


class ApplyMethod:
    """Stylise one image in memory with a trained feed-forward model (or synthesise a texture)."""

    name = "apply"
    summary = "stylise an image with a trained feed-forward network (fast, any size)"
    Config = ApplyConfig
    inputs = (
        Input("model", "model", "trained model file (model.pt, .onnx) or training folder"),
        Input("image", "image", "the photo (not needed for texture-synthesis models)", required=False),
        Input("style", "images", "paintings for arbitrary-style (AdaIN) models, mixed by style_weights", required=False),
        Input("style_mask", "images", "AdaIN spatial control: one grey map per painting, white where it applies (where none does, the photo is kept)", required=False),
    )
    context: tuple[str, ...] = ()
    main_options = ("strength", "preserve_colors", "style_index", "style_mix", "alpha", "edge", "seed")

    def run(self, config: ApplyConfig, inputs: Mapping[str, Any], *, callback: Callable[[Event], None] | None = None, **context: Any) -> Result:
        """Stylise ``inputs["image"]`` (a path, a LoadedImage or a 1x3xHxW tensor) with
        ``inputs["model"]``; the manifest holds what :func:`apply_model` embeds in its files plus
        the config and the time."""
        from .inputs import load_input

        t0 = time.perf_counter()
        styles, masks = inputs.get("style") or (), inputs.get("style_mask") or ()
        if isinstance(styles, (str, os.PathLike, torch.Tensor)):
            styles = [styles]
        if isinstance(masks, (str, os.PathLike, torch.Tensor)):
            masks = [masks]
        with ModelSession(inputs["model"], config, callback=callback, styles=styles, masks=masks) as session:
            emit(callback, StageEvent(0, 1, "stylising", 1))
            meta = session.describe(self.name, config)
            alpha = None
            if not session.takes_photo:
                if inputs.get("image") is not None:
                    raise UsageError(_no_images_message(session.model_file), params="size")
                y, size = synthesise(session, config)
                meta.update(seed=config.seed, size=list(size))
            else:
                if inputs.get("image") is None:
                    raise UsageError(f"{session.model_file}: this model stylises a photo; give an image")
                photo, alpha, info = load_input(inputs["image"], "image", config.max_pixels)
                if config.sheet:
                    from .ff_sheet import contact_sheet

                    y, labels = contact_sheet(session, photo, config)
                    alpha = None
                    meta.update(source=Path(info["path"]).name if info.get("path") else None, sheet=labels)
                else:
                    y, size, tile = stylise_photo(session, photo, config)
                    meta.update(source=Path(info["path"]).name if info.get("path") else None, size=list(size), tile=tile)
            emit(callback, StepEvent(step=1, total=1, losses={}))
        manifest = {**meta, "config": config_to_dict(config), "time_s": round(time.perf_counter() - t0, 3)}
        return Result(image=y, alpha=alpha, manifest=manifest)
