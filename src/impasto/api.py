"""The Python API, built from the method registry; the CLI and the web service are shells over it.

    import impasto
    impasto.list_methods()                       # ['gatys', 'reconstruct', 'apply', ...]
    impasto.method_schema("gatys")               # JSON Schema of its options (forms, validation)
    result = impasto.run("gatys", content="photo.jpg", style="painting.jpg", edge=512, weights="random")
    result.save("out.png")                       # image + manifest (out.png.json)

``stylize``, ``reconstruct``, ``train``, ``apply`` and ``export`` are thin wrappers for the common
cases. Shells import only this module, :mod:`impasto.config`, :mod:`impasto.errors` and
:mod:`impasto.progress` (a test enforces it), so everything they need is re-exported here.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from ._version import __version__  # noqa: F401 (re-exported)
from .allocator import LEAN_MMAP_THRESHOLD, allocator_mode, lean_allocator, tune_allocator  # noqa: F401 (for the commands: process-wide settings)
from .config import config_from_mapping, config_schema, config_to_dict  # noqa: F401 (re-exported for callers)
from .errors import UsageError
from .data.folder import IMAGE_EXTENSIONS  # noqa: F401 (re-exported for the service's catalogue)
from .methods.ff_train import ADD_STYLE_STEPS  # noqa: F401 (re-exported for the CLI's help)
from .methods.gatys_method import LoadedStyle, StyleSpec, load_manifest, parse_style_spec, snapshot_name  # noqa: F401
from .methods.registry import ENTRY_POINT_GROUP, Input, get_method, method_names, register, split_arguments, unregister  # noqa: F401
from .methods.result import Result, resume_state_path, write_resume_state  # noqa: F401
from .progress import Event
from .provenance import peak_memory_mb, versions  # noqa: F401 (re-exported)

__all__ = [
    "list_methods", "method_schema", "method_inputs", "method_config", "run", "Result", "Input", "register", "unregister",
    "load_input_image", "save_image",
    "stylize", "reconstruct", "train", "apply", "export", "sweep", "batch",
    "StyleSpec", "parse_style_spec", "load_manifest", "peak_memory_mb", "resume_state_path", "versions",
]

PathLike = str | os.PathLike[str]


# ------------------------------------------------------------------------------------------
# the registry


def list_methods() -> list[str]:
    """Names of every registered method (built-in first, then plugins): also the CLI commands."""
    return method_names()


def method_config(name: str) -> type:
    """The Config dataclass of method ``name`` (the single source of its defaults and help)."""
    return get_method(name).Config


def load_finisher(model: PathLike | None, *, device: str = "auto") -> Any:
    """The ``upscale`` post-step of gatys/apply/video (:func:`impasto.methods.upscale.load_finisher`)."""
    from .methods.upscale import load_finisher as _load

    return _load(model, device=device)


def method_inputs(name: str) -> tuple[Input, ...]:
    """The inputs method ``name`` takes (name, kind, help, required)."""
    return tuple(get_method(name).inputs)


def method_schema(name: str) -> dict[str, Any]:
    """The JSON Schema of method ``name``'s options, built from its Config.

    ``properties`` holds one entry per option (type, default, description, enum); the extension
    ``x-inputs`` lists the inputs (name, kind, description, required), which are files, not options;
    ``x-main`` names the options most people change (the method's ``main_options``; forms show
    these and fold the rest away as advanced; every option when the method names none).
    """
    method = get_method(name)
    schema = config_schema(method.Config)
    schema["title"] = method.name
    schema["description"] = method.summary
    schema["x-inputs"] = [{"name": i.name, "kind": i.kind, "description": i.help, "required": i.required} for i in method.inputs]
    main = [o for o in getattr(method, "main_options", ()) if o in schema.get("properties", {})]
    schema["x-main"] = main or list(schema.get("properties", {}))
    return schema


def run(name: str, *, config: Any = None, callback: Callable[[Event], None] | None = None, **arguments: Any) -> Result:
    """Run method ``name``: keyword arguments are its inputs (``content=``, ``style=``, ...), its
    options (fields of its Config) and its run-time extras; ``config`` gives a whole Config instead
    (options then override fields of it). Returns a Result (``.image``, ``.losses``,
    ``.manifest``, ``.save(path)``); progress goes to ``callback`` as events.

    An unknown keyword or a missing input raises a UsageError naming it.
    """
    method = get_method(name)
    inputs, options, context = split_arguments(method, arguments, tuple(getattr(method, "context", ())))
    if config is not None:
        if not isinstance(config, method.Config):
            raise UsageError(f"config: expected a {method.Config.__name__} for method {name}, got {type(config).__name__}", params="config")
        config = dataclasses.replace(config, **options) if options else config
    elif hasattr(method, "resolve_config"):
        config = method.resolve_config(options, context)
    else:
        config = config_from_mapping(method.Config, options)
    return method.run(config, inputs, callback=callback, **context)


# ------------------------------------------------------------------------------------------
# the common cases


def stylize(
    content: Any,
    style: Any,
    *,
    config: Any = None,
    callback: Callable[[Event], None] | None = None,
    snapshot_path: PathLike | None = None,
    resume: PathLike | None = None,
    download_progress: Callable[[int, int | None], None] | None = None,
    extractor: Any = None,
    style_cache: Any = None,
    **options: Any,
) -> Result:
    """Optimisation-based style transfer (Gatys et al.): ``run("gatys", ...)``.

    ``content``: a path, a LoadedImage or a 1x3xHxW tensor in [0, 1]. ``style``: one or a list
    of paths/tensors/StyleSpec (``"starry.jpg:0.7"`` blends). Options are GatysConfig fields
    (``edge=512, iterations=300, style_weight=...``) or pass ``config=GatysConfig(...)``.
    ``extractor``: a prebuilt FeatureExtractor to reuse (sweeps, batches).
    ``snapshot_path``: with ``save_every``, snapshots are written as ``<stem>.step0100.png`` beside it
    together with a resumable manifest. ``resume``: a manifest (``OUT.json``) of an interrupted run
    (its config, overridden by ``options``).
    """
    context = dict(snapshot_path=snapshot_path, resume=resume, download_progress=download_progress, extractor=extractor, style_cache=style_cache)
    if resume is not None:
        config = None
    return run("gatys", config=config, callback=callback, content=content, style=style, **context, **options)


def reconstruct(image: Any, *, config: Any = None, callback: Callable[[Event], None] | None = None, **options: Any) -> Result:
    """Rebuild ``image`` from one layer's content or style representation: ``run("reconstruct", ...)``."""
    return run("reconstruct", config=config, callback=callback, image=image, **options)


def train(config: Any, style: Any, data: PathLike | None, out_dir: PathLike, *, callback: Callable[[Event], None] | None = None, resume: bool = False,
          style_data: PathLike | None = None, add_style_from: PathLike | None = None, **options: Any) -> Path:
    """Train a feed-forward network into ``out_dir``; returns the model file.

    ``config``: a training config (``train_config(**options)``; None: defaults of ``options["arch"]``
    plus ``options``); ``data``: a folder of photos (None for texture synthesis); ``style``: the
    style image, or several images / a folder of them for ``arch="multistyle"``;
    ``style_data``: a folder of paintings for ``arch="adain"`` (any style); ``add_style_from``: a
    multi-style model to which ``style`` is added (only its γ/β are trained).
    """
    from .methods import feedforward

    from .nets.registry import recipe_of

    arch = str(getattr(config, "arch", None) or options.get("arch") or "johnson")
    recipe = recipe_of(arch)
    if recipe is not None:
        config = _as_config(recipe[0], config, options)
        if style is not None:
            raise UsageError(f"a {arch} network learns any style from a folder of paintings (style_data), not from one style image", params="style_data")
        return recipe[1](config, data, style_data, out_dir, callback=callback, resume=resume)
    if style_data is not None:
        raise UsageError(f"style_data (a folder of paintings) is for {' or '.join(painting_archs())}, not arch {arch}", params="style_data")
    if config is None and add_style_from is not None:
        return feedforward.train(None, style, data, out_dir, callback=callback, resume=resume, add_style_from=add_style_from, **options)
    config = _as_config(train_config_class(arch), config, options)
    return feedforward.train(config, style, data, out_dir, callback=callback, resume=resume, add_style_from=add_style_from)


def _as_config(cls: type, config: Any, options: Mapping[str, Any]) -> Any:
    """``config`` as an instance of ``cls`` (the arch's own config class, with its defaults): a
    config of another class keeps only the values it set away from its own defaults."""
    if config is None:
        return config_from_mapping(cls, dict(options))
    if not isinstance(config, cls):
        defaults = config_to_dict(type(config)())
        explicit = {k: v for k, v in config_to_dict(config).items() if k in cls.__dataclass_fields__ and v != defaults.get(k)}
        config = config_from_mapping(cls, {**explicit, "arch": getattr(config, "arch")})
    return config_from_mapping(cls, {**config_to_dict(config), **options}) if options else config


def train_config(**options: Any) -> Any:
    """A validated training config from keyword options (``arch=``, ``steps=``, ...); ``arch="adain"``
    gets the AdaIN recipe's defaults (VGG19 relu4_1, lr 1e-4, batch 8, ...)."""
    return config_from_mapping(train_config_class(options.get("arch")), options)


def train_config_class(arch: str | None = None) -> type:
    """The training config dataclass of ``arch`` (the CLI builds ``impasto train``'s flags from
    the default one, TrainConfig)."""
    from .nets.registry import recipe_of

    recipe = recipe_of(arch) if arch else None
    if recipe is not None:
        return recipe[0]
    from .methods.feedforward import TrainConfig

    return TrainConfig


def painting_archs() -> list[str]:
    """The architectures that learn any style from a folder of paintings (``style_data``)."""
    from .nets.registry import ARCHS, get_arch

    return [name for name in ARCHS if get_arch(name).recipe is not None and get_arch(name).paintings]


def photo_archs() -> list[str]:
    """The architectures with their own recipe that learn from photos alone (super-resolution)."""
    from .nets.registry import ARCHS, get_arch

    return [name for name in ARCHS if get_arch(name).recipe is not None and not get_arch(name).paintings]


def model_styles(model: PathLike) -> list[dict[str, Any]]:
    """The styles a multi-style model holds (``index``, ``name``, ``sha256``), ``[]`` for others."""
    from .methods.ff_model import load_model
    from .methods.ff_styles import model_styles as styles_of

    return styles_of(load_model(model).meta)


def saved_training(out_dir: PathLike) -> dict[str, Any]:
    """What a training run saved beside its checkpoints (``OUT_DIR/config.json``), for resuming."""
    import json

    from .methods.feedforward import CONFIG_NAME

    out = Path(out_dir)
    try:
        return dict(json.loads((out / CONFIG_NAME).read_text(encoding="utf-8")))
    except FileNotFoundError:
        raise UsageError(f"{out}: nothing to resume (no {CONFIG_NAME}); start a run with style and data", params=("style", "data")) from None
    except (OSError, ValueError) as exc:
        raise UsageError(f"{out / CONFIG_NAME}: unreadable ({exc})") from None


def apply(model: PathLike, images: Any = (), out_dir: PathLike = "styled", *, config: Any = None,
          callback: Callable[[Event], None] | None = None, styles: Sequence[Any] = (), masks: Sequence[Any] = (), **overrides: Any) -> Any:
    """Stylise images and folders with a trained model into ``out_dir`` (an ApplyResult).

    ``styles``: paintings for an AdaIN model (``masks``: one grey map per painting); a
    multi-style model takes ``style_index=`` or ``style_mix=`` among the overrides.
    """
    from .methods import feedforward

    return feedforward.apply_model(model, images, out_dir, config=config, callback=callback, styles=styles, masks=masks, **overrides)


def export(model: PathLike, out: PathLike | None = None, *, format: str = "onnx", opset: int = 17) -> Path:
    """Export a trained model to ONNX or TorchScript; returns the written file."""
    from .methods import feedforward

    return feedforward.export_model(model, out, format=format, opset=opset)


def onnx_cache_dir() -> Path:
    """Where ``apply`` caches the ONNX exports of ``.pt`` models (``IMPASTO_HOME/cache/onnx``)."""
    from .methods import onnx_cache

    return onnx_cache.cache_dir()


def onnx_cache_budget() -> int:
    """The ONNX cache's budget in bytes (``IMPASTO_ONNX_CACHE_MAX``, default 2G; ConfigError when
    that is not a size)."""
    from .methods import onnx_cache

    return onnx_cache.cache_budget()


def onnx_cache_entries() -> list[Any]:
    """The ONNX cache's entries (:class:`impasto.methods.onnx_cache.CacheEntry`), least recently used first."""
    from .methods import onnx_cache

    return onnx_cache.entries()


def clear_onnx_cache(*, dry_run: bool = False) -> tuple[list[Any], list[tuple[Any, str]]]:
    """Remove every ONNX cache entry not in use (``dry_run``: only say which): the removed
    entries, and those kept with why."""
    from .methods import onnx_cache

    return onnx_cache.clear(dry_run=dry_run)


def precision_tip(config: Any, method: str = "gatys") -> str | None:
    """A one-line tip when ``config.precision`` (``auto``) keeps ``method`` in fp32 on a CPU that
    computes bfloat16 natively (what bf16 would gain and cost there); None otherwise."""
    from .features import resolve_device
    from .precision import precision_tip as tip

    return tip(config.precision, resolve_device(config.device), method)


def format_size(n: float) -> str:
    """``n`` bytes for people (1K = 1024, as ``IMPASTO_ONNX_CACHE_MAX`` reads sizes)."""
    from .methods import onnx_cache

    return onnx_cache.format_size(n)


def sweep(content: PathLike, style: Any, axes: Sequence[Any], out_dir: PathLike, *, config: Any = None,
          callback: Callable[[Event], None] | None = None, columns: int | None = None, download_progress: Any = None) -> dict[str, Any]:
    """Run a grid over one or two gatys parameters (see :func:`impasto.methods.sweep.run_sweep`)."""
    from .methods.sweep import run_sweep

    return run_sweep(content, style, axes, out_dir, config=config, callback=callback, columns=columns, download_progress=download_progress)


def batch(contents: Sequence[PathLike], styles: Sequence[Any], out_dir: PathLike, *, config: Any = None,
          callback: Callable[[Event], None] | None = None, download_progress: Any = None) -> list[dict[str, Any]]:
    """Stylise every content image with every style (see :func:`impasto.methods.sweep.run_batch`)."""
    from .methods.sweep import run_batch

    return run_batch(contents, styles, out_dir, config=config, callback=callback, download_progress=download_progress)


def parse_sweep_axis(text: str) -> Any:
    """``NAME=V1,V2`` (or ``;``-separated) -> a sweep axis (the CLI's ``--param``)."""
    from .methods.sweep import parse_axis

    return parse_axis(text)


def sweep_list_valued() -> tuple[str, ...]:
    """Gatys options whose single value is itself a comma-separated list."""
    from .methods.sweep import LIST_VALUED

    return tuple(LIST_VALUED)


def check_output(path: PathLike) -> Path:
    """Fail early (OutputError naming the path) when ``path`` cannot be written."""
    from .atomic import check_writable

    return check_writable(path)



def load_input_image(source: Any, what: str = "image", max_pixels: int | None = None) -> tuple[Any, Any, dict[str, Any]]:
    """``(image 1x3xHxW, alpha or None, info for the manifest)`` from a path, a LoadedImage or a
    tensor: how methods read their image inputs (``what`` names the input in errors)."""
    from .image.io import DEFAULT_MAX_PIXELS
    from .methods.inputs import load_input

    return load_input(source, what, DEFAULT_MAX_PIXELS if max_pixels is None else max_pixels)


def save_image(path: PathLike, image: Any, **kwargs: Any) -> Path:
    """Write an image atomically (see :func:`impasto.image.save.save_image`)."""
    from .image.save import save_image as _save

    return _save(path, image, **kwargs)


# ------------------------------------------------------------------------------------------
# pretrained weights (the `impasto weights` command)


def list_weights() -> list[Any]:
    """Every known checkpoint record (WeightSpec), e.g. ``vgg19.torchvision``."""
    from .weights import list_specs

    return list(list_specs())


def get_weights(name: str) -> Any:
    """The checkpoint record called ``name`` (unknown names raise with a suggestion)."""
    from .weights import get_spec

    return get_spec(name)


def weights_cache_dir() -> Path:
    """Where verified checkpoints are kept (``IMPASTO_HOME``, else the torch hub cache)."""
    from .weights import store

    return Path(store.cache_dir())


def weights_cache_path(spec: Any) -> Path:
    """Where checkpoint ``spec`` lives once downloaded or imported."""
    from .weights import store

    return Path(store.cache_path(spec))


def verify_weights(path: PathLike, spec: Any) -> None:
    """Re-hash ``path`` against ``spec`` (ChecksumError when it does not match)."""
    from .weights import store

    store.verify(Path(path), spec, deep=True)


def download_weights(spec: Any, *, progress: Callable[[int, int | None], None] | None = None, timeout: float | None = None) -> Path:
    """Download, verify and cache checkpoint ``spec``; returns its path."""
    from .weights import store

    kwargs: dict[str, Any] = {"progress": progress}
    if timeout is not None:
        kwargs["timeout"] = timeout
    return Path(store.download(spec, **kwargs))


def identify_weights(path: PathLike) -> Any:
    """The record a local file matches (by hash), or None."""
    from .weights import store

    return store.identify(Path(path))


def import_weights(path: PathLike, name: str) -> Path:
    """Copy a local checkpoint into the cache under record ``name`` (verified)."""
    from .weights import store

    return Path(store.import_file(Path(path), name))


def is_caffe_weights(spec: Any) -> bool:
    """True when ``spec`` takes Caffe preprocessing (BGR, 0-255, mean subtracted)."""
    from .weights import CAFFE

    return bool(spec.preprocessing == CAFFE)


def read_training_log(path: PathLike) -> list[dict[str, Any]]:
    """The records of a training run's ``log.jsonl`` (a half-written last line is skipped)."""
    from .optim.training import read_log

    return read_log(path)


# ------------------------------------------------------------------------------------------
# video and webcam (pip install 'impasto[video]')


def video_config_class() -> type:
    """The options of ``impasto video`` itself (:class:`impasto.video.render.VideoConfig`)."""
    from .video.render import VideoConfig

    return VideoConfig


def render_video(source: PathLike, output: PathLike, *, model: PathLike | None = None, style: Any = None, config: Any = None,
                 apply: Any = None, gatys: Any = None, callback: Callable[[Event], None] | None = None, upscale: Any = None, **options: Any) -> Any:
    """Stylise a video (see :func:`impasto.video.render.render_video`); ``options`` are
    VideoConfig fields when no ``config`` is given."""
    from .video.render import VideoConfig, render_video as _render

    return _render(source, output, model=model, style=style, config=_as_config(VideoConfig, config, options), apply=apply, gatys=gatys, callback=callback, upscale=upscale)


def webcam_config_class() -> type:
    """The options of ``impasto webcam`` (:class:`impasto.video.webcam.WebcamConfig`)."""
    from .video.webcam import WebcamConfig

    return WebcamConfig


def run_webcam(models: Sequence[PathLike], **kwargs: Any) -> Any:
    """Live stylisation (see :func:`impasto.video.webcam.run_webcam`)."""
    from .video.webcam import run_webcam as _run

    return _run(models, **kwargs)
