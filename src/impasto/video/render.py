"""``impasto video``: a clip in, a stylised clip out, consistent over time and resumable.

The run keeps a work folder beside the output (``.OUTPUT.impasto-work/``): ``job.json`` (what
the run is: input, model or styles, every option), ``frames/000001.png`` ... (each finished frame,
written atomically as it completes). Re-running the same command after Ctrl-C or kill -9 starts
at the first missing frame, reading the previous finished frame from disk, which is exactly what
an uninterrupted run uses (frames are exchanged as 8-bit images in both cases), so the result is
the same. When every frame is done the output is muxed to a temporary file (audio copied from
the input) and renamed; the manifest ``OUTPUT.json`` records the options and the flicker metric,
and the work folder is removed (``keep_work`` keeps it).

Optical flow between input frames (at the output size) is computed once per clip and kept in the
flow cache (``IMPASTO_HOME/cache/flow``, default ``~/.impasto``), reused by later runs on the same
clip (delete the folder to reclaim the space).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from .._version import __version__
from ..atomic import atomic_path
from ..config import check_rules, config_to_dict
from ..errors import Interrupted, OutputError, UsageError
from ..progress import Event, MessageEvent, StageEvent, StepEvent, emit

__all__ = ["VideoConfig", "VideoResult", "render_video", "work_folder", "flow_cache_folder", "CONSISTENCY", "DEFAULT_OPTIM_EDGE"]

CONSISTENCY = ("flow", "none")
#: the optimisation path's frame size when ``edge`` is 0 (it costs seconds per iteration above)
DEFAULT_OPTIM_EDGE = 384


def _h(text: str, **extra: Any) -> dict[str, Any]:
    return {"help": text, **extra}


@dataclass(frozen=True)
class VideoConfig:
    """The options of ``impasto video`` itself (the model's and the optimisation's own options
    live in ApplyConfig and GatysConfig)."""

    edge: int = field(default=0, metadata=_h(f"longest side of the output frames in px (0 = the input's size with --model, {DEFAULT_OPTIM_EDGE} for optimisation)"))
    consistency: str = field(default="flow", metadata=_h("flow: with --model, blend each frame with the flow-warped previous output where tracking is confident; when optimising, start each frame from that warp and add a temporal loss (Ruder et al.). none: every frame on its own (flickers)", choices=CONSISTENCY))
    blend: float = field(default=0.6, metadata=_h("--model with consistency flow: how much of the warped previous output a confidently tracked pixel keeps (0..0.95)"))
    flow: str = field(default="dis", metadata=_h("optical flow: dis (OpenCV DIS, medium preset), dis-fast (its fast preset: a third of the time, a little less exact) or farneback", choices=("dis", "dis-fast", "farneback")))
    temporal_weight: float = field(default=200.0, metadata=_h("optimisation: weight of the temporal loss (change against the warped previous frame on reliable pixels)"))
    iterations: int = field(default=60, metadata=_h("optimisation: iterations per frame after the first", short="-n"))
    first_iterations: int = field(default=200, metadata=_h("optimisation: iterations of the first frame (coarse to fine)"))
    long_term: bool = field(default=False, metadata=_h("optimisation: also keep each frame consistent with the frames 2 and 4 before it (Ruder et al.'s long-term loss; more flow)"))
    frames: int = field(default=0, metadata=_h("stop after this many frames (0 = all); a preview (the audio is then left out)"))
    fps: float = field(default=0.0, metadata=_h("frame rate of a folder of frames (0 = 25); ignored for video files"))
    crf: int = field(default=18, metadata=_h("H.264/VP9 quality: 0 = lossless, 18 = visually lossless, 28 = small"))
    seed: int = field(default=0, metadata=_h("random seed (noise models, optimisation)"))
    keep_work: bool = field(default=False, metadata=_h("keep the work folder (finished frames) after the output is written"))
    max_pixels: int = field(default=8192 * 8192, metadata=_h("refuse videos whose frames have more pixels than this"))

    def __post_init__(self) -> None:
        check_rules([
            (self.edge == 0 or self.edge >= 16, "edge", f"edge must be 0 or >= 16 px, got {self.edge}"),
            (self.consistency in CONSISTENCY, "consistency", f"consistency must be flow or none, got {self.consistency!r}"),
            (0.0 <= self.blend <= 0.95, "blend", f"blend must be in [0, 0.95], got {self.blend}"),
            (self.flow in ("dis", "dis-fast", "farneback"), "flow", f"flow must be dis, dis-fast or farneback, got {self.flow!r}"),
            (self.temporal_weight >= 0, "temporal_weight", f"temporal_weight must be >= 0, got {self.temporal_weight}"),
            (self.iterations >= 0, "iterations", f"iterations must be >= 0, got {self.iterations}"),
            (self.first_iterations >= 0, "first_iterations", f"first_iterations must be >= 0, got {self.first_iterations}"),
            (self.frames >= 0, "frames", f"frames must be >= 0, got {self.frames}"),
            (self.fps >= 0, "fps", f"fps must be >= 0, got {self.fps}"),
            (0 <= self.crf <= 51, "crf", f"crf must be in [0, 51], got {self.crf}"),
            (self.max_pixels > 0, "max_pixels", f"max_pixels must be > 0, got {self.max_pixels}"),
        ])


@dataclass
class VideoResult:
    """What a run made: the output, its manifest and the flicker figures."""

    output: Path
    manifest: dict[str, Any]
    frames: int
    flicker: dict[str, float]
    resumed_from: int = 0


def work_folder(output: str | os.PathLike[str]) -> Path:
    """Where a run keeps its finished frames until the output is written."""
    out = Path(output)
    return out.parent / f".{out.name.rstrip('/') or 'frames'}.impasto-work"


def flow_cache_folder(info: Any, size: tuple[int, int], method: str) -> Path:
    """The flow cache of one clip at one size: keyed by the input (path, size and time of every
    file) so a changed clip gets new flows."""
    from ..config import impasto_home

    digest = hashlib.sha256(f"{method}|{size}".encode())
    for p in (info.frame_paths or (info.path,)):
        st = Path(p).stat()
        digest.update(f"|{Path(p).resolve()}|{st.st_size}|{st.st_mtime_ns}".encode())
    return impasto_home() / "cache" / "flow" / digest.hexdigest()[:24]


def _frame_size(info: Any, edge: int) -> tuple[int, int]:
    from ..image.resize import fit_edge

    h, w = info.height, info.width
    return (h, w) if not edge or edge == max(h, w) else fit_edge((h, w), edge)


def _resize(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    if frame.shape[:2] == size:
        return frame
    import cv2

    down = size[0] < frame.shape[0]
    return cv2.resize(frame, (size[1], size[0]), interpolation=cv2.INTER_AREA if down else cv2.INTER_CUBIC)


def _read_png(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def _write_png(path: Path, frame: np.ndarray) -> None:
    from PIL import Image

    tmp = path.with_name(f".{path.name}.part")
    Image.fromarray(frame).save(tmp, format="PNG", compress_level=1)
    os.replace(tmp, path)


def _job_description(info: Any, path_kind: str, source: dict[str, Any], config: Any, options: dict[str, Any]) -> dict[str, Any]:
    return {
        "format": "impasto-video-work/1",
        "impasto": __version__,
        "input": [str(Path(p).resolve()) for p in (info.frame_paths or (info.path,))][:1] + [info.frames],
        "path": path_kind,
        "source": source,
        "video": config_to_dict(config),
        "options": options,
    }


def _prepare_work(work: Path, job: dict[str, Any], callback: Callable[[Event], None] | None) -> int:
    """Create or reuse the work folder; returns how many frames are already finished."""
    frames = work / "frames"
    meta = work / "job.json"
    if meta.is_file():
        try:
            old = json.loads(meta.read_text())
        except (OSError, json.JSONDecodeError):
            old = None
        if old == job:
            done = 0
            while (frames / f"{done + 1:06d}.png").is_file():
                done += 1
            return done
        emit(callback, MessageEvent(f"{work}: left by a different run (other input or options): starting afresh", "warning"))
        shutil.rmtree(work)
    frames.mkdir(parents=True, exist_ok=True)
    with atomic_path(meta) as tmp:
        tmp.write_text(json.dumps(job, indent=1))
    return 0


def render_video(
    source: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    model: str | os.PathLike[str] | None = None,
    style: Any = None,
    config: VideoConfig | None = None,
    apply: Any = None,
    gatys: Any = None,
    callback: Callable[[Event], None] | None = None,
    upscale: Any = None,
) -> VideoResult:
    """Stylise the video (or frame folder / pattern) ``source`` into ``output`` (a video file by its
    extension, else a folder of PNG frames).

    With ``model``: the fast path (``apply``: an ApplyConfig for its options; ``style``: the
    paintings of an AdaIN model). Without: per-frame optimisation towards ``style`` (``gatys``: a
    GatysConfig). ``upscale``: a :class:`~impasto.methods.upscale.Finisher` applied to each
    finished frame as it is encoded (the work folder keeps the stylised size, so resuming works
    with or without it). See the module docstring for resuming, caching and the manifest.
    """
    from ..methods.ff_apply import ApplyConfig
    from ..methods.gatys import GatysConfig
    from .flow import FlowCache, warping_error
    from .io import VideoWriter, is_video_output, probe, read_frames, write_frame_folder

    config = config or VideoConfig()
    if model is None and not style:
        raise UsageError("give a trained model (model) or a painting to optimise towards (style)", params="model")
    info = probe(source, fps=config.fps or None, max_pixels=config.max_pixels)
    out = Path(output)
    as_video = is_video_output(out)
    if as_video:
        from ..atomic import check_writable

        check_writable(out)
    elif out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise OutputError(f"{out}: exists and is not an empty folder (frames are written to a new folder)")
    elif not out.parent.is_dir():
        raise OutputError(f"{out}: cannot write: folder {out.parent} does not exist")
    edge = config.edge or (0 if model is not None else min(DEFAULT_OPTIM_EDGE, max(info.width, info.height)))
    size = _frame_size(info, edge)
    total = min(info.frames, config.frames) if config.frames else info.frames

    styles = [style] if isinstance(style, (str, os.PathLike)) else list(style or [])
    if model is not None:
        from .stylise import FastPath

        apply = apply or ApplyConfig(seed=config.seed)
        path: Any = FastPath(model, apply, styles=styles, callback=callback)
        source_desc: dict[str, Any] = {"model": str(Path(model).resolve()), "styles": [str(s) for s in styles]}
        options = config_to_dict(path.config)
    else:
        from .stylise import OptimPath

        gatys = gatys or GatysConfig(seed=config.seed)
        from dataclasses import replace

        gatys = replace(gatys, edge=max(size))
        def warnings_only(event: Event) -> None:  # the frame bar is the progress; the optimiser's steps are not
            if isinstance(event, MessageEvent) and event.level == "warning":
                emit(callback, event)

        path = OptimPath(styles, gatys, iterations=config.iterations, first_iterations=config.first_iterations, temporal_weight=config.temporal_weight, callback=warnings_only)
        source_desc = {"styles": [str(s) for s in styles]}
        options = config_to_dict(gatys)
    try:
        return _render(info, out, as_video, size, total, config, path, source_desc, options, callback, FlowCache, warping_error, VideoWriter, read_frames, write_frame_folder, upscale)
    finally:
        path.close()


def _render(info: Any, out: Path, as_video: bool, size: tuple[int, int], total: int, config: VideoConfig, path: Any, source_desc: dict[str, Any],
            options: dict[str, Any], callback: Callable[[Event], None] | None, FlowCache: Any, warping_error: Any, VideoWriter: Any, read_frames: Any,
            write_frame_folder: Any, upscale: Any = None) -> VideoResult:
    t0 = time.perf_counter()
    work = work_folder(out)
    job = json.loads(json.dumps(_job_description(info, path.kind, source_desc, config, options), default=str))
    done = _prepare_work(work, job, callback)
    frames_dir = work / "frames"
    flows = FlowCache(flow_cache_folder(info, size, config.flow), config.flow)
    uses_flow = config.consistency == "flow"
    if done:
        emit(callback, MessageEvent(f"resuming: {done} of {total} frames already done ({work})"))
    emit(callback, StageEvent(stage=0, stages=2, description=f"stylising {total} frames at {size[1]}x{size[0]} ({path.kind})", steps=total, done=done))

    history: list[np.ndarray] = []  # recent input frames (long-term: t-1, t-2, t-4)
    outputs: dict[int, np.ndarray] = {}
    frame_times: list[float] = []
    start = max(0, done - 4)
    try:
        for t, raw in enumerate(read_frames(info, start=start), start=start):
            if t >= total:
                break
            frame = _resize(raw, size)
            history.append(frame)
            del history[:-5]
            if t < done:  # context for the first new frame: the inputs and outputs before it
                outputs[t] = _read_png(frames_dir / f"{t + 1:06d}.png")
                continue
            t1 = time.perf_counter()
            result = _stylise(t, frame, history, outputs, path, flows, config, uses_flow)
            _write_png(frames_dir / f"{t + 1:06d}.png", result)
            outputs[t] = result
            for old in [k for k in outputs if k < t - 4]:
                del outputs[old]
            frame_times.append(time.perf_counter() - t1)
            emit(callback, StepEvent(step=t + 1, total=total, losses={"s/frame": frame_times[-1]}, stage=0, stages=2))
    except KeyboardInterrupt:
        flows.close()
        finished = sum(1 for _ in frames_dir.glob("[0-9]*.png"))
        raise Interrupted(f"interrupted after {finished} of {total} frames; run the same command again to continue") from None

    emit(callback, StageEvent(stage=1, stages=2, description="measuring flicker and writing the output", steps=total, done=0))
    try:
        flows.flush()
        flicker = _flicker(info, size, total, frames_dir, flows, warping_error, read_frames, callback)
    finally:
        flows.close()
    audio = info if (config.frames == 0 or config.frames >= info.frames) else None
    if audio is None and info.audio_streams:
        emit(callback, MessageEvent("a preview (--frames): the audio is left out", "warning"))
    stylised = (_read_png(frames_dir / f"{t + 1:06d}.png") for t in range(total))
    s = upscale.scale if upscale is not None else 1
    if upscale is not None:
        stylised = (upscale.frame(f) for f in stylised)
    if as_video:
        with VideoWriter(out, fps=info.fps, size=(size[1] * s, size[0] * s), audio_from=audio, crf=config.crf) as writer:
            for frame in stylised:
                writer.write(frame)
    else:
        write_frame_folder(out, stylised)
    manifest = {
        "impasto": __version__,
        "command": "video",
        "input": {"path": str(info.path), "kind": info.kind, "frames": info.frames, "fps": str(info.fps), "size": [info.width, info.height],
                  "rotation": info.rotation, "audio_streams": info.audio_streams, "codec": info.codec},
        "output": {"path": str(out), "frames": total, "fps": str(info.fps), "size": [size[1] * s, size[0] * s], "audio": bool(audio and info.audio_streams)},
        "path": path.kind,
        **source_desc,
        "video": config_to_dict(config),
        "options": options,
        "described": path.describe(),
        "flicker": flicker,
        "time_s": round(time.perf_counter() - t0, 3),
        "seconds_per_frame": round(float(np.median(frame_times)), 4) if frame_times else None,
        "resumed_from": done,
        **({"upscale": upscale.record((size[1], size[0]))} if upscale is not None else {}),
    }
    sidecar = Path(str(out).rstrip("/") + ".json")
    with atomic_path(sidecar) as tmp:
        tmp.write_text(json.dumps(manifest, indent=1, default=str))
    if not config.keep_work:
        shutil.rmtree(work, ignore_errors=True)
    return VideoResult(out, manifest, total, flicker, resumed_from=done)


def _stylise(t: int, frame: np.ndarray, history: list[np.ndarray], outputs: dict[int, np.ndarray], path: Any, flows: Any, config: VideoConfig, uses_flow: bool) -> np.ndarray:
    if path.kind == "model":
        styled = path.frame(frame)
        if t == 0 or not uses_flow or config.blend == 0:
            return styled
        from .stylise import blend_previous

        flow, mask = flows.get(t, frame, history[-2])
        return blend_previous(styled, outputs[t - 1], frame, history[-2], flow, mask, config.blend)
    if t == 0 or not uses_flow:
        return path.frame(frame)  # the first frame, or every frame on its own (consistency none)
    from .flow import pair_flow, warp

    flow, mask = flows.get(t, frame, history[-2])
    extra = []
    if config.long_term:
        for j in (2, 4):
            if t - j >= 0 and len(history) > j:
                f_j, m_j = pair_flow(frame, history[-1 - j], config.flow)
                extra.append((warp(outputs[t - j], f_j), m_j))
    return path.frame(frame, warp(outputs[t - 1], flow), mask, extra)


def _flicker(info: Any, size: tuple[int, int], total: int, frames_dir: Path, flows: Any, warping_error: Any, read_frames: Any,
             callback: Callable[[Event], None] | None) -> dict[str, float]:
    """Mean warping error between consecutive frames over reliable pixels: of the output and, for
    reference, of the input (both at the output size, same flows)."""
    out_err: list[float] = []
    in_err: list[float] = []
    prev_in = prev_out = None
    for t, raw in enumerate(read_frames(info)):
        if t >= total:
            break
        frame = _resize(raw, size)
        styled = _read_png(frames_dir / f"{t + 1:06d}.png")
        if prev_in is not None:
            flow, mask = flows.get(t, frame, prev_in)
            out_err.append(warping_error(prev_out, styled, flow, mask))
            in_err.append(warping_error(prev_in, frame, flow, mask))
        prev_in, prev_out = frame, styled
        emit(callback, StepEvent(step=t + 1, total=total, losses={}, stage=1, stages=2))
    output = float(np.mean(out_err)) if out_err else 0.0
    source = float(np.mean(in_err)) if in_err else 0.0
    return {"output": round(output, 6), "input": round(source, 6), "pairs": len(out_err)}
