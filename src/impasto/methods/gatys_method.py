"""The registered ``gatys`` method: its inputs, its run manifest, snapshots and resuming.

The optimisation itself lives in :mod:`impasto.methods.gatys` (``run``: coarse to fine, tiled when
needed). This module turns what a caller gives (paths, ``PATH:WEIGHT:SCALE`` style specs, tensors,
masks, an interrupted run's manifest) into that engine's inputs, and its output into a
:class:`~impasto.methods.result.Result` with the full manifest.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import torch

from .._version import __version__
from ..atomic import check_writable
from ..config import config_from_mapping, config_to_dict
from ..errors import ConfigError, ImageTooSmallError, UsageError
from ..progress import Event, MessageEvent, SnapshotEvent, emit
from ..provenance import peak_memory_mb, thin_history, versions, write_json
from . import gatys
from .inputs import load_input
from .registry import Input
from .result import Result, resume_state_path, write_resume_state

__all__ = ["GatysMethod", "StyleSpec", "LoadedStyle", "parse_style_spec", "load_manifest", "read_resume_point", "snapshot_name"]

PathLike = str | os.PathLike[str]


@dataclass(frozen=True)
class StyleSpec:
    """A style image reference with its blend weight and relative scale."""

    path: str
    weight: float = 1.0
    scale: float = 1.0


@dataclass
class LoadedStyle:
    """A style image loaded once (sweeps and batches share its tensor) with its spec."""

    loaded: Any
    spec: StyleSpec


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
        raise ConfigError(f"style {text}: blend weight must be >= 0", params="style")
    if scale <= 0:
        raise ConfigError(f"style {text}: scale must be > 0", params="style")
    return StyleSpec(path, weight, scale)


def load_manifest(path: PathLike) -> dict[str, Any]:
    """Read a run manifest (``OUT.json``) for resuming."""
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


def read_resume_point(manifest_path: PathLike, manifest: dict[str, Any], max_pixels: int, callback: Any) -> gatys.ResumePoint:
    """The ResumePoint of an interrupted run: its saved state, else its last snapshot image."""
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
        return gatys.ResumePoint.from_dict(data)
    snap = manifest.get("snapshot")
    if not snap or not Path(snap["path"]).is_file():
        raise UsageError(f"{manifest_path}: the run has no saved state or snapshot to resume from (run with save_every N)", params="save_every")
    emit(callback, MessageEvent(
        f"{manifest_path}: no saved optimiser state; continuing from snapshot {snap['path']} (step {snap['step']}), "
        "which keeps the step count but not the optimiser's memory", "warning"))
    image, _, _ = load_input(snap["path"], "snapshot", max_pixels)
    return gatys.ResumePoint(int(snap["level"]), int(snap["step"]), None, image, [], list(manifest.get("levels", []))[: int(snap["level"])])


def snapshot_name(path: Path, step: int, level: int, levels: int) -> Path:
    """``out.png`` -> ``out.step0100.png`` (``out.s1.step0100.png`` for coarser pyramid levels)."""
    tag = f".step{step:04d}" if level == levels - 1 else f".s{level}.step{step:04d}"
    return path.with_name(path.stem + tag + (path.suffix or ".png"))


def _write_snapshot(path: Path, event: SnapshotEvent, alpha: Any, manifest: dict[str, Any], levels: int) -> None:
    from ..image.save import save_image

    snap = snapshot_name(path, event.step, event.stage, levels)
    save_image(snap, event.image, alpha=alpha)
    manifest["snapshot"] = {"path": str(snap), "level": event.stage, "step": event.step}
    if event.state is not None:  # exact state: a killed run resumes from here as if never stopped
        state = resume_state_path(path)
        write_resume_state(state, event.state)
        manifest["resume"] = {"state": str(state), "level": event.state.level, "step": event.state.step}
    write_json(Path(str(path) + ".json"), {**manifest, "status": "running", "output": str(path)})


def as_style_list(style: Any) -> list[Any]:
    """One style (path, spec, loaded image, tensor) or several -> a list."""
    if isinstance(style, (str, os.PathLike, StyleSpec, LoadedStyle, torch.Tensor)) or type(style).__name__ == "LoadedImage":
        return [style]
    return list(style)


def style_inputs(style: Any, max_pixels: int) -> tuple[list[gatys.StyleInput], list[dict[str, Any]]]:
    inputs: list[gatys.StyleInput] = []
    infos: list[dict[str, Any]] = []
    for item in as_style_list(style):
        spec = parse_style_spec(item) if isinstance(item, str) else item
        if isinstance(spec, LoadedStyle):
            img, _, info = load_input(spec.loaded, "style", max_pixels)
            name, weight, scale = spec.spec.path, spec.spec.weight, spec.spec.scale
        elif isinstance(spec, StyleSpec):
            img, _, info = load_input(spec.path, "style", max_pixels)
            name, weight, scale = spec.path, spec.weight, spec.scale
        else:
            img, _, info = load_input(spec, "style", max_pixels)
            name, weight, scale = f"style{len(inputs)}", 1.0, 1.0
        inputs.append(gatys.StyleInput(image=img, weight=weight, scale=scale, name=name))
        infos.append({**info, "weight": weight, "scale": scale})
    if not inputs:
        raise UsageError("give at least one style image")
    if sum(s.weight for s in inputs) <= 0:
        raise UsageError("style blend weights must not all be 0")
    return inputs, infos


def build_gatys_encoder(config: gatys.GatysConfig, download_progress: Callable[[int, int | None], None] | None = None) -> Any:
    """The FeatureExtractor ``config`` asks for, with every layer its loss reads."""
    from ..features import build_encoder, get_encoder_spec

    content_layers, style_layers = gatys.loss_layers(config, get_encoder_spec(config.encoder))
    return build_encoder(
        config.encoder, weights=config.weights, layers=[*content_layers, *style_layers], pooling=config.pooling,
        device=config.device, seed=0, progress=download_progress, preprocessing=config.preprocessing,
    )


class GatysMethod:
    """Optimisation-based style transfer (Gatys et al.), coarse to fine, tiled above the memory budget."""

    name = "gatys"
    summary = "optimisation-based style transfer (Gatys et al.)"
    Config = gatys.GatysConfig
    inputs = (
        Input("content", "image", "the photograph"),
        Input("style", "images", "the painting(s): PATH[:WEIGHT[:SCALE]] blends several"),
    )
    #: keyword arguments of run() that are neither inputs nor options
    context = ("snapshot_path", "resume", "download_progress", "extractor", "style_cache")
    main_options = ("edge", "iterations", "strength", "style_weight", "preserve_colors", "seed")

    def resolve_config(self, options: Mapping[str, Any], context: Mapping[str, Any]) -> gatys.GatysConfig:
        """The run's config: ``options`` over the defaults, or over an interrupted run's config."""
        if context.get("resume") is not None:
            return config_from_mapping(gatys.GatysConfig, {**load_manifest(context["resume"])["config"], **options})
        return config_from_mapping(gatys.GatysConfig, options)

    def run(
        self,
        config: gatys.GatysConfig,
        inputs: Mapping[str, Any],
        *,
        callback: Callable[[Event], None] | None = None,
        snapshot_path: PathLike | None = None,
        resume: PathLike | None = None,
        download_progress: Callable[[int, int | None], None] | None = None,
        extractor: Any = None,
        style_cache: Any = None,
    ) -> Result:
        """Stylise ``inputs["content"]`` with ``inputs["style"]`` (see ``impasto.stylize``)."""
        from ..features import get_encoder_spec

        # Denormal floats make CPU convolutions several times slower (seen with Adam: 5.8 -> 1.95 s
        # per step at 512 px); flushing them to zero changes nothing visible.
        torch.set_flush_denormal(True)
        resume_info = load_manifest(resume) if resume is not None else None
        if snapshot_path is not None:
            check_writable(snapshot_path)
        c_img, c_alpha, c_info = load_input(inputs["content"], "content", config.max_pixels)
        styles_in, style_infos = style_inputs(inputs["style"], config.max_pixels)

        content_mask = None
        if config.content_mask:
            from ..image.masks import load_region_masks

            if len(styles_in) != 1:
                raise UsageError("content_mask/style_mask work with a single style image", params=("content_mask", "style_mask"))
            regions = load_region_masks(
                config.content_mask, config.style_mask,
                content_size=tuple(c_img.shape[-2:]), style_size=tuple(styles_in[0].image.shape[-2:]),
            )
            content_mask = regions.content
            styles_in[0].mask = regions.style

        init_image = None
        point = None
        if resume_info is not None:
            point = read_resume_point(resume, resume_info, config.max_pixels, callback)  # type: ignore[arg-type]
        elif config.init not in gatys.INITS:
            init_image, _, _ = load_input(config.init, "init", config.max_pixels)

        spec = get_encoder_spec(config.encoder)
        encoder = extractor if extractor is not None else build_gatys_encoder(config, download_progress)
        for img, info, role in [(c_img, c_info, "content"), *((s.image, i, "style") for s, i in zip(styles_in, style_infos))]:
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

        def on_event(event: Event) -> None:
            if isinstance(event, SnapshotEvent) and snapshot_path is not None:
                _write_snapshot(Path(snapshot_path), event, c_alpha, manifest, ladder_len)
            emit(callback, dataclasses.replace(event, state=None) if isinstance(event, SnapshotEvent) else event)

        t0 = time.perf_counter()
        out = gatys.run(
            config, c_img, styles_in, encoder=encoder, callback=on_event, init_image=init_image,
            content_mask=content_mask, style_cache=style_cache, resume=point,
        )
        manifest.update(
            status=out.stopped,
            encoder=out.encoder_info,
            levels=out.levels,
            iterations_run=sum(level["iterations"] for level in out.levels),
            final_losses=out.history[-1] if out.history else {},
            loss_history=thin_history(out.history),
            time_s=round(time.perf_counter() - t0, 3),
            peak_memory_mb=round(peak_memory_mb(), 1),
        )
        if torch.cuda.is_available() and manifest["device"].startswith("cuda"):
            manifest["peak_cuda_memory_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
        return Result(image=out.image, alpha=c_alpha, manifest=manifest, resume_point=out.resume)
