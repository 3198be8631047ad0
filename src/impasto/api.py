"""The façade: validate inputs, build the encoder, dispatch to a method, return a Result."""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from . import __version__
from .atomic import check_writable
from .config import config_from_mapping, config_to_dict  # noqa: F401 (re-exported for callers)
from .errors import ConfigError, ImageTooSmallError, UsageError
from .progress import Event, SnapshotEvent, emit
from .provenance import sha256_file, versions, write_json  # noqa: F401 (versions re-exported)

__all__ = ["Result", "StyleSpec", "stylize", "parse_style_spec", "load_manifest", "peak_memory_mb", "train", "apply", "resume_state_path"]

PathLike = str | os.PathLike[str]


@dataclass(frozen=True)
class StyleSpec:
    """A style image reference with its blend weight and relative scale."""

    path: str
    weight: float = 1.0
    scale: float = 1.0


def parse_style_spec(text: str) -> StyleSpec:
    """``PATH[:WEIGHT[:SCALE]]`` -> StyleSpec (a trailing part that is not a number is part of the path)."""
    parts = text.split(":")
    numbers: list[float] = []
    while len(parts) > 1 and len(numbers) < 2:
        try:
            numbers.insert(0, float(parts[-1]))
        except ValueError:
            break
        parts.pop()
    path = ":".join(parts)
    weight = numbers[0] if numbers else 1.0
    scale = numbers[1] if len(numbers) > 1 else 1.0
    if weight < 0:
        raise ConfigError(f"--style {text}: blend weight must be >= 0")
    if scale <= 0:
        raise ConfigError(f"--style {text}: scale must be > 0")
    return StyleSpec(path, weight, scale)


@dataclass
class Result:
    """A stylised image with its alpha (if the content had one) and its run manifest."""

    image: torch.Tensor
    alpha: torch.Tensor | None = None
    manifest: dict[str, Any] = field(default_factory=dict)
    resume_point: Any = None  # methods.gatys.ResumePoint of an interrupted run

    @property
    def losses(self) -> dict[str, float]:
        return dict(self.manifest.get("final_losses", {}))

    def save(self, path: PathLike, *, bit_depth: int = 8, sidecar: bool = True) -> Path:
        """Write the image (atomically) with the manifest embedded, plus ``PATH.json`` beside it.

        An interrupted run also writes ``PATH.resume.pt`` (the exact optimiser state, named in
        the manifest under ``resume``); a finished one removes a stale one.
        """
        from .image.io import save_image

        manifest = dict(self.manifest, output=str(path))
        manifest.pop("resume", None)
        state = resume_state_path(path)
        if self.resume_point is not None:
            write_resume_state(state, self.resume_point)
            manifest["resume"] = {"state": str(state), "level": self.resume_point.level, "step": self.resume_point.step}
        out = save_image(path, self.image, alpha=self.alpha, metadata=manifest, bit_depth=bit_depth)
        if sidecar:
            write_json(Path(str(path) + ".json"), manifest)
        if self.resume_point is None and state.exists():
            state.unlink()
        return out


def resume_state_path(output: PathLike) -> Path:
    """``out.png`` -> ``out.png.resume.pt``: where a run's exact resume state lives."""
    return Path(str(output) + ".resume.pt")


def write_resume_state(path: Path, point: Any) -> None:
    """Save a ResumePoint atomically (plain tensors and lists: loads with weights_only=True)."""
    from .atomic import atomic_path

    with atomic_path(path) as tmp:
        torch.save(point.to_dict(), tmp)


def _read_resume_point(manifest_path: PathLike, manifest: dict[str, Any], max_pixels: int, callback: Any) -> Any:
    """The ResumePoint of an interrupted run: its saved state, else its last snapshot image."""
    from .methods.gatys import ResumePoint
    from .progress import MessageEvent

    if manifest.get("status") in ("completed", "converged"):
        raise UsageError(f"{manifest_path}: the run finished ({manifest.get('iterations_run', 0)} iterations); there is nothing to resume")
    saved = manifest.get("resume")
    if saved and Path(saved.get("state", "")).is_file():
        try:
            data = torch.load(saved["state"], map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - any unreadable file gets the same message
            raise UsageError(f"{saved['state']}: not a readable impasto resume state ({type(exc).__name__})") from None
        if not isinstance(data, dict) or data.get("format") != "impasto-gatys-resume/1":
            raise UsageError(f"{saved['state']}: not an impasto gatys resume state")
        return ResumePoint.from_dict(data)
    snap = manifest.get("snapshot")
    if not snap or not Path(snap["path"]).is_file():
        raise UsageError(f"{manifest_path}: the run has no saved state or snapshot to resume from (run with --save-every N)")
    emit(callback, MessageEvent(
        f"{manifest_path}: no saved optimiser state; continuing from snapshot {snap['path']} (step {snap['step']}), "
        "which keeps the step count but not the optimiser's memory", "warning"))
    image, _, _ = _load(snap["path"], "snapshot", max_pixels)
    return ResumePoint(int(snap["level"]), int(snap["step"]), None, image, [], list(manifest.get("levels", []))[: int(snap["level"])])


def load_manifest(path: PathLike) -> dict[str, Any]:
    """Read a run manifest (``OUT.json``) for --resume."""
    p = Path(path)
    if not p.is_file():
        raise UsageError(f"{p}: no such manifest file")
    try:
        data = json.loads(p.read_text())
    except (OSError, ValueError) as exc:
        raise UsageError(f"{p}: not a readable impasto manifest ({exc})") from None
    if not isinstance(data, dict) or data.get("method") != "gatys" or "config" not in data:
        raise UsageError(f"{p}: not an impasto gatys run manifest")
    return data


def peak_memory_mb() -> float:
    """Peak resident memory of this process so far (MB)."""
    try:
        import resource  # POSIX only
    except ImportError:  # pragma: no cover - Windows
        return 0.0
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / 1024.0 if sys.platform != "darwin" else kb / 2**20


def _load(path_or_image: Any, what: str, max_pixels: int) -> tuple[torch.Tensor, torch.Tensor | None, dict[str, Any]]:
    from .image.io import LoadedImage, load_image

    if isinstance(path_or_image, torch.Tensor):
        img = path_or_image if path_or_image.dim() == 4 else path_or_image.unsqueeze(0)
        if img.dim() != 4 or img.shape[1] != 3:
            raise UsageError(f"{what}: expected an image tensor 1x3xHxW, got {tuple(path_or_image.shape)}")
        return img.float(), None, {"path": None, "size": [img.shape[-1], img.shape[-2]]}
    if isinstance(path_or_image, LoadedImage):
        loaded = path_or_image
    else:
        loaded = load_image(path_or_image, max_pixels=max_pixels)
    info = {
        "path": str(loaded.path) if loaded.path else None,
        "sha256": sha256_file(loaded.path) if loaded.path else None,
        "size": list(loaded.info.get("size", [loaded.image.shape[-1], loaded.image.shape[-2]])),
        "notes": list(loaded.info.get("notes", [])),
    }
    return loaded.image, loaded.alpha, info


def _as_style_specs(style: Any) -> list[Any]:
    if isinstance(style, (str, os.PathLike, StyleSpec, torch.Tensor)) or type(style).__name__ in ("_LoadedStyle", "LoadedImage"):
        return [style]
    return list(style)


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
    """Optimisation-based style transfer (Gatys et al.).

    ``content``: a path, a LoadedImage or a 1x3xHxW tensor in [0, 1]. ``style``: one or a list
    of paths/tensors/StyleSpec (``"starry.jpg:0.7"`` blends). Options are GatysConfig fields
    (``edge=512, iterations=300, style_weight=...``) or pass ``config=GatysConfig(...)``.
    ``extractor``: a prebuilt FeatureExtractor to reuse (sweeps, batches).
    ``snapshot_path``: with ``save_every``, snapshots are written as ``<stem>.step0100.png`` beside it
    together with a resumable manifest. ``resume``: a manifest (``OUT.json``) of an interrupted run.
    """
    from .features import build_encoder, get_encoder_spec
    from .methods import gatys

    # Denormal floats make CPU convolutions several times slower (seen with Adam: 5.8 -> 1.95 s
    # per step at 512 px); flushing them to zero changes nothing visible.
    torch.set_flush_denormal(True)
    resume_info: dict[str, Any] | None = None
    if resume is not None:
        resume_info = load_manifest(resume)
        base = {**resume_info["config"], **options}
        config = config_from_mapping(gatys.GatysConfig, base)
    elif config is None:
        config = config_from_mapping(gatys.GatysConfig, options)
    elif options:
        config = dataclasses.replace(config, **options)
    if snapshot_path is not None:
        check_writable(snapshot_path)

    c_img, c_alpha, c_info = _load(content, "content", config.max_pixels)
    style_inputs: list[gatys.StyleInput] = []
    style_infos: list[dict[str, Any]] = []
    for item in _as_style_specs(style):
        spec = parse_style_spec(item) if isinstance(item, str) else item
        if isinstance(spec, _LoadedStyle):
            img, _, info = _load(spec.loaded, "style", config.max_pixels)
            name, weight, scale = spec.spec.path, spec.spec.weight, spec.spec.scale
        elif isinstance(spec, StyleSpec):
            img, _, info = _load(spec.path, "style", config.max_pixels)
            name = spec.path
            weight, scale = spec.weight, spec.scale
        else:
            img, _, info = _load(spec, "style", config.max_pixels)
            name, weight, scale = f"style{len(style_inputs)}", 1.0, 1.0
        style_inputs.append(gatys.StyleInput(image=img, weight=weight, scale=scale, name=name))
        style_infos.append({**info, "weight": weight, "scale": scale})
    if not style_inputs:
        raise UsageError("give at least one style image")
    if sum(s.weight for s in style_inputs) <= 0:
        raise UsageError("style blend weights must not all be 0")

    content_mask = None
    if config.content_mask:
        from .image.masks import load_region_masks

        if len(style_inputs) != 1:
            raise UsageError("--content-mask/--style-mask work with a single style image")
        regions = load_region_masks(
            config.content_mask, config.style_mask,
            content_size=tuple(c_img.shape[-2:]), style_size=tuple(style_inputs[0].image.shape[-2:]),
        )
        content_mask = regions.content
        style_inputs[0].mask = regions.style

    init_image = None
    point = None
    if resume_info is not None:
        point = _read_resume_point(resume, resume_info, config.max_pixels, callback)  # type: ignore[arg-type]
    elif config.init not in gatys.INITS:
        init_image, _, _ = _load(config.init, "--init", config.max_pixels)

    spec = get_encoder_spec(config.encoder)
    encoder = extractor
    if encoder is None:
        layers = list(gatys.parse_layers(config.content_layers) or spec.default_content_layers)
        layers += list(gatys.parse_layers(config.style_layers) or spec.default_style_layers)
        encoder = build_encoder(
            config.encoder, weights=config.weights, layers=layers, pooling=config.pooling,
            device=config.device, seed=0, progress=download_progress, preprocessing=config.preprocessing,
        )
    for img, info, role in [(c_img, c_info, "content"), *((s.image, i, "style") for s, i in zip(style_inputs, style_infos))]:
        if min(img.shape[-2:]) < spec.min_side:  # too little picture to upscale
            raise ImageTooSmallError(
                f"{info.get('path') or role}: image is {img.shape[-1]}x{img.shape[-2]}; the {spec.name} encoder needs at least {spec.min_side} px on each side"
            )

    manifest: dict[str, Any] = {
        "impasto": __version__,
        "method": "gatys",
        "status": "running",
        "config": config_to_dict(config),
        "seed": config.seed,
        "content": c_info,
        "styles": style_infos,
        "versions": versions(),
        "device": str(next((b.device for b in encoder.buffers()), "cpu")),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    if resume_info is not None:
        manifest["resumed_from"] = str(resume)
    if encoder.weights is not None and encoder.weights.warning:
        manifest["warnings"] = [encoder.weights.warning]

    ladder_len = len(config.ladder())
    user_cb = callback

    def on_event(event: Event) -> None:
        if isinstance(event, SnapshotEvent) and snapshot_path is not None:
            _write_snapshot(Path(snapshot_path), event, c_alpha, manifest, ladder_len)
        emit(user_cb, dataclasses.replace(event, state=None) if isinstance(event, SnapshotEvent) else event)

    t0 = time.perf_counter()
    out = gatys.run(
        config, c_img, style_inputs, encoder=encoder, callback=on_event, init_image=init_image,
        content_mask=content_mask, style_cache=style_cache, resume=point,
    )
    manifest.update(
        status=out.stopped,
        encoder=out.encoder_info,
        levels=out.levels,
        iterations_run=sum(level["iterations"] for level in out.levels),
        final_losses=out.history[-1] if out.history else {},
        loss_history=_thin(out.history),
        time_s=round(time.perf_counter() - t0, 3),
        peak_memory_mb=round(peak_memory_mb(), 1),
    )
    if torch.cuda.is_available() and manifest["device"].startswith("cuda"):
        manifest["peak_cuda_memory_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return Result(image=out.image, alpha=c_alpha, manifest=manifest, resume_point=out.resume)


def _thin(history: Sequence[dict[str, float]], keep: int = 200) -> list[dict[str, float]]:
    if len(history) <= keep:
        return [dict(h) for h in history]
    step = len(history) / keep
    picked = [history[int(i * step)] for i in range(keep)]
    return [dict(h) for h in picked[:-1]] + [dict(history[-1])]


def snapshot_name(path: Path, step: int, level: int, levels: int) -> Path:
    """``out.png`` -> ``out.step0100.png`` (``out.s1.step0100.png`` for coarser pyramid levels)."""
    tag = f".step{step:04d}" if level == levels - 1 else f".s{level}.step{step:04d}"
    return path.with_name(path.stem + tag + (path.suffix or ".png"))


def _write_snapshot(path: Path, event: SnapshotEvent, alpha: Any, manifest: dict[str, Any], levels: int) -> None:
    from .image.io import save_image

    snap = snapshot_name(path, event.step, event.stage, levels)
    save_image(snap, event.image, alpha=alpha)
    manifest["snapshot"] = {"path": str(snap), "level": event.stage, "step": event.step}
    if event.state is not None:  # exact state: a killed run resumes from here as if never stopped
        state = resume_state_path(path)
        write_resume_state(state, event.state)
        manifest["resume"] = {"state": str(state), "level": event.state.level, "step": event.state.step}
    write_json(Path(str(path) + ".json"), {**manifest, "status": "running", "output": str(path)})


def train(*args: Any, **kwargs: Any) -> Any:
    """Train a feed-forward stylisation network (see ``impasto.methods.feedforward.train``)."""
    from .methods import feedforward

    return feedforward.train(*args, **kwargs)


def apply(*args: Any, **kwargs: Any) -> Any:
    """Stylise images with a trained model (see ``impasto.methods.feedforward.apply_model``)."""
    from .methods import feedforward

    return feedforward.apply_model(*args, **kwargs)





class _EncoderCache:
    """Encoders keyed by (name, weights, preprocessing, pooling, layers, device): built once per sweep/batch."""

    def __init__(self) -> None:
        self._store: dict[tuple[Any, ...], Any] = {}

    def get(self, config: Any, download_progress: Any = None) -> Any:
        from .features import build_encoder, get_encoder_spec
        from .methods.gatys import parse_layers

        spec = get_encoder_spec(config.encoder)
        layers = tuple(parse_layers(config.content_layers) or spec.default_content_layers) + tuple(
            parse_layers(config.style_layers) or spec.default_style_layers
        )
        key = (config.encoder, config.weights, config.preprocessing, config.pooling, layers, config.device)
        if key not in self._store:
            self._store[key] = build_encoder(
                config.encoder, weights=config.weights, layers=list(layers), pooling=config.pooling,
                device=config.device, seed=0, progress=download_progress, preprocessing=config.preprocessing,
            )
        return self._store[key]


def sweep(
    content: PathLike,
    style: Any,
    axes: Sequence[Any],
    out_dir: PathLike,
    *,
    config: Any = None,
    callback: Callable[[Event], None] | None = None,
    columns: int | None = None,
    download_progress: Any = None,
) -> dict[str, Any]:
    """Run a grid over one or two GatysConfig parameters; write each image, a labelled contact
    sheet (``sheet.png``) and ``results.csv`` (final losses, time) into ``out_dir``. Encoders
    and style targets are computed once and reused across the grid."""
    from .image.io import save_image
    from .methods import gatys
    from .methods.sweep import contact_sheet, grid, slug, write_csv
    from .progress import MessageEvent

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    base = config or gatys.GatysConfig()
    combos = grid(base, axes)
    encoders, styles_cache = _EncoderCache(), gatys.StyleCache()
    loaded_content = _preload(content, base.max_pixels)
    loaded_styles = [_preload_style(s, base.max_pixels) for s in _as_style_specs(style)]
    images, labels, rows = [], [], []
    for i, (lab, cfg) in enumerate(combos):
        emit(callback, MessageEvent(f"[{i + 1}/{len(combos)}] " + ", ".join(f"{k}={v}" for k, v in lab.items())))
        enc = encoders.get(cfg, download_progress)
        r = stylize(loaded_content, loaded_styles, config=cfg, callback=callback, extractor=enc, style_cache=styles_cache)
        name = slug(lab) + ".png"
        r.save(out / name, sidecar=False)
        images.append(r.image)
        labels.append(", ".join(f"{k}={v}" for k, v in lab.items()))
        rows.append({**lab, "file": name, **{f"loss_{k}": round(v, 6) for k, v in r.losses.items()}, "time_s": r.manifest["time_s"]})
    cols = columns or (len(axes[-1].values) if len(axes) == 2 else min(len(images), 4))
    save_image(out / "sheet.png", contact_sheet(images, labels, cols))
    write_csv(out / "results.csv", rows)
    return {"runs": rows, "sheet": str(out / "sheet.png"), "csv": str(out / "results.csv"), "style_targets_computed": len(styles_cache)}


def batch(
    contents: Sequence[PathLike],
    styles: Sequence[Any],
    out_dir: PathLike,
    *,
    config: Any = None,
    callback: Callable[[Event], None] | None = None,
    download_progress: Any = None,
) -> list[dict[str, Any]]:
    """Stylise every content image with every style in one process (``<content>__<style>.png``);
    the encoder is built once and style targets are cached per (style, size, layers, encoder)."""
    from .methods import gatys
    from .progress import MessageEvent

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cfg = config or gatys.GatysConfig()
    encoders, cache = _EncoderCache(), gatys.StyleCache()
    enc = encoders.get(cfg, download_progress)
    loaded_styles = [_preload_style(s, cfg.max_pixels) for s in styles]
    done = []
    total = len(contents) * len(loaded_styles)
    for ci, c in enumerate(contents):
        loaded = _preload(c, cfg.max_pixels)
        for si, (s, spec) in enumerate(zip(loaded_styles, styles)):
            k = ci * len(loaded_styles) + si + 1
            emit(callback, MessageEvent(f"[{k}/{total}] {Path(str(c)).name} x {Path(str(_style_path(spec))).name}"))
            r = stylize(loaded, [s], config=cfg, callback=callback, extractor=enc, style_cache=cache)
            name = f"{Path(str(c)).stem}__{Path(str(_style_path(spec))).stem}.png"
            r.save(out / name)
            done.append({"content": str(c), "style": str(_style_path(spec)), "output": str(out / name), "losses": r.losses})
    return done


def _style_path(spec: Any) -> str:
    return parse_style_spec(spec).path if isinstance(spec, str) else getattr(spec, "path", str(spec))


def _preload(path: Any, max_pixels: int) -> Any:
    from .image.io import load_image

    return load_image(path, max_pixels=max_pixels) if isinstance(path, (str, os.PathLike)) else path


def _preload_style(spec: Any, max_pixels: int) -> Any:
    """Load a style once (keeping weight/scale) so every run shares the same tensor (cache key)."""
    from .image.io import load_image

    if isinstance(spec, str):
        spec = parse_style_spec(spec)
    if isinstance(spec, StyleSpec):
        return _LoadedStyle(load_image(spec.path, max_pixels=max_pixels), spec)
    return spec


@dataclass
class _LoadedStyle:
    loaded: Any
    spec: StyleSpec
