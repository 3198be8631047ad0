"""``impasto webcam``: live stylisation from a camera (or a video played as one).

Frames come from OpenCV's capture (``camera``), a video file (``source``), or any iterable of
frames (the Python API; the tests' synthetic camera). Each goes through a trained network and,
with consistency on, is blended with the previous output warped by optical flow. The result goes
to a window (OpenCV's highgui), a video file, or both, with an FPS overlay.

Keys (in the window, or scripted with ``keys`` for headless runs): ``n``/``p`` next/previous
style (the styles of a multi-style model, or the models given), ``0``-``9`` a style by number,
``c`` consistency on/off, ``f`` the FPS overlay on/off, ``q`` or Esc quits.

Nothing grows with the number of frames: the loop keeps one previous frame and output, the FPS
is a moving average, and frames are written as they come, so a run can last for days.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np

from ..config import check_rules
from ..errors import UsageError, VideoError
from ..progress import Event, MessageEvent, emit

__all__ = ["WebcamConfig", "WebcamStats", "LiveStyliser", "run_webcam", "parse_size", "KEYS"]

KEYS = {"n": "next style", "p": "previous style", "0-9": "style by number", "c": "consistency on/off", "f": "FPS overlay on/off", "q/Esc": "quit"}


def _h(text: str, **extra: Any) -> dict[str, Any]:
    return {"help": text, **extra}


def parse_size(text: str) -> tuple[int, int]:
    """``"640x480"`` -> (width, height)."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise UsageError(f"size {text!r}: expected WIDTHxHEIGHT like 640x480", params="size") from None
    if not (16 <= w <= 8192 and 16 <= h <= 8192):
        raise UsageError(f"size {text!r}: each side must be 16..8192 px", params="size")
    return w, h


@dataclass(frozen=True)
class WebcamConfig:
    """Options of ``impasto webcam``."""

    size: str = field(default="640x480", metadata=_h("frame size WIDTHxHEIGHT the camera is asked for and the network sees", metavar="WxH"))
    consistency: str = field(default="flow", metadata=_h("blend with the flow-warped previous output where tracking is confident (flow) or not (none); key c toggles it", choices=("flow", "none")))
    blend: float = field(default=0.6, metadata=_h("with consistency: how much of the warped previous output a confidently tracked pixel keeps (0..0.95)"))
    flow: str = field(default="dis-fast", metadata=_h("optical flow: dis-fast (OpenCV DIS, fast preset: live), dis (medium preset) or farneback", choices=("dis", "dis-fast", "farneback")))
    fps_overlay: bool = field(default=True, metadata=_h("draw the frame rate in the corner; key f toggles it"))
    mirror: bool = field(default=False, metadata=_h("flip the picture left-right (a mirror, as most webcam apps show it)"))
    max_frames: int = field(default=0, metadata=_h("stop after this many frames (0 = until q, Esc, or the end of --source)"))
    loop: bool = field(default=False, metadata=_h("--source: start the file again at its end (a camera that never stops)"))

    def __post_init__(self) -> None:
        parse_size(self.size)
        check_rules([
            (self.consistency in ("flow", "none"), "consistency", f"consistency must be flow or none, got {self.consistency!r}"),
            (0.0 <= self.blend <= 0.95, "blend", f"blend must be in [0, 0.95], got {self.blend}"),
            (self.max_frames >= 0, "max_frames", f"max_frames must be >= 0, got {self.max_frames}"),
        ])


@dataclass
class WebcamStats:
    """What a run did: frames, mean FPS, the styles shown, and the peak RSS seen (bytes)."""

    frames: int = 0
    seconds: float = 0.0
    fps: float = 0.0
    styles_seen: set[int] = field(default_factory=set)
    rss_samples: list[tuple[int, int]] = field(default_factory=list)  # (frame, RSS), at most 64 kept


def _rss() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        import resource

        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


class LiveStyliser:
    """The per-frame state of a live run: the models (or one multi-style model's styles), the
    current style, the previous frame and output, consistency on or off."""

    def __init__(self, models: Sequence[Any], apply: Any, config: WebcamConfig, *, styles: Sequence[Any] = (), callback: Callable[[Event], None] | None = None) -> None:
        from .stylise import FastPath

        if not models:
            raise UsageError("give at least one trained model", params="model")
        self.paths = [FastPath(m, apply, styles=styles, callback=callback) for m in models]
        self.config = config
        self.consistency = config.consistency == "flow"
        self.overlay = config.fps_overlay
        first = self.paths[0]
        self.multi = len(self.paths) == 1 and len(first.session.meta.get("styles") or []) > 1
        self.count = len(first.session.meta["styles"]) if self.multi else len(self.paths)
        self.index = apply.style_index if self.multi else 0
        self._prev: tuple[np.ndarray, np.ndarray] | None = None

    def select(self, index: int) -> None:
        """Show style ``index`` (wraps around)."""
        index %= self.count
        if index == self.index:
            return
        if self.multi:
            self.paths[0].set_style(index)
        self.index = index
        self._prev = None  # another style: nothing to stay consistent with

    def key(self, key: str) -> bool:
        """Apply one key; False means quit."""
        if key in ("q", "\x1b"):
            return False
        if key == "n":
            self.select(self.index + 1)
        elif key == "p":
            self.select(self.index - 1)
        elif key.isdigit():
            self.select(int(key))
        elif key == "c":
            self.consistency = not self.consistency
            self._prev = None
        elif key == "f":
            self.overlay = not self.overlay
        return True

    def process(self, frame: np.ndarray) -> np.ndarray:
        """One camera frame (HxWx3 uint8) -> the stylised frame."""
        path = self.paths[0] if self.multi else self.paths[self.index]
        styled = path.frame(frame)
        if self.consistency and self._prev is not None and self.config.blend > 0:
            from .flow import pair_flow
            from .stylise import blend_previous

            prev_frame, prev_out = self._prev
            flow, mask = pair_flow(frame, prev_frame, self.config.flow)
            styled = blend_previous(styled, prev_out, frame, prev_frame, flow, mask, self.config.blend)
        self._prev = (frame, styled)
        return styled

    def close(self) -> None:
        """Release the models."""
        for p in self.paths:
            p.close()


def _camera(index: int, size: tuple[int, int]) -> Iterator[np.ndarray]:
    import cv2

    cap = cv2.VideoCapture(index)
    if not cap.isOpened():
        raise VideoError(f"camera {index}: cannot be opened (no such device, or in use); --source FILE plays a video instead")
    cap.set(cv2.CAP_PROP_FRAME_WIDTH, size[0])
    cap.set(cv2.CAP_PROP_FRAME_HEIGHT, size[1])
    try:
        while True:
            ok, bgr = cap.read()
            if not ok:
                raise VideoError(f"camera {index}: stopped delivering frames")
            yield bgr[:, :, ::-1]
    finally:
        cap.release()


def _file(info: Any, loop: bool) -> Iterator[np.ndarray]:
    from .io import read_frames

    while True:
        yield from read_frames(info)
        if not loop:
            return


def _fit(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    if frame.shape[1] == size[0] and frame.shape[0] == size[1]:
        return np.ascontiguousarray(frame)
    import cv2

    return cv2.resize(np.ascontiguousarray(frame), size, interpolation=cv2.INTER_AREA)


def _overlay(frame: np.ndarray, text: str) -> np.ndarray:
    import cv2

    out = np.ascontiguousarray(frame).copy()
    scale = max(0.4, frame.shape[0] / 640)
    cv2.putText(out, text, (8, int(22 * scale)), cv2.FONT_HERSHEY_SIMPLEX, 0.6 * scale, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(out, text, (8, int(22 * scale)), cv2.FONT_HERSHEY_SIMPLEX, 0.6 * scale, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def _window(title: str) -> Any:
    import cv2

    try:
        cv2.namedWindow(title, cv2.WINDOW_NORMAL)
    except cv2.error:
        raise UsageError("this OpenCV has no window support (opencv-python-headless, or no display): write to a file with --output, or pip install opencv-python") from None
    return cv2


def run_webcam(
    models: Sequence[Any],
    *,
    apply: Any = None,
    config: WebcamConfig | None = None,
    camera: int = 0,
    source: str | os.PathLike[str] | Iterable[np.ndarray] | None = None,
    output: str | os.PathLike[str] | None = None,
    window: bool = True,
    styles: Sequence[Any] = (),
    keys: Mapping[int, str] | None = None,
    callback: Callable[[Event], None] | None = None,
) -> WebcamStats:
    """Run live stylisation until q/Esc, ``config.max_frames``, or the end of ``source``.

    ``source``: a video file or an iterable of HxWx3 uint8 frames instead of ``camera``.
    ``output``: also write the stylised stream to this video file (closed atomically at the end).
    ``keys``: {frame number: key} pressed at that frame (headless runs and tests).
    """
    from ..methods.ff_apply import ApplyConfig

    config = config or WebcamConfig()
    size = parse_size(config.size)
    apply = apply or ApplyConfig()
    rate: Any = 30
    if source is None:
        frames: Iterable[np.ndarray] = _camera(camera, size)
    elif isinstance(source, (str, os.PathLike)):
        from .io import probe

        info = probe(source)
        rate = info.fps
        frames = _file(info, config.loop)
    else:
        frames = source
    writer = None
    if output is not None:
        from .io import VideoWriter

        writer = VideoWriter(output, fps=rate, size=size)
    stats = WebcamStats()
    t0 = time.perf_counter()
    live: LiveStyliser | None = None
    cv2 = None
    try:
        live = LiveStyliser(models, apply, config, styles=styles, callback=callback)
        cv2 = _window("impasto") if window else None
        fps, last = 0.0, time.perf_counter()
        t0 = last
        for n, frame in enumerate(frames):
            if config.max_frames and n >= config.max_frames:
                break
            if keys and n in keys and not live.key(keys[n]):
                break
            frame = _fit(frame, size)
            if config.mirror:
                frame = frame[:, ::-1]
            out = live.process(np.ascontiguousarray(frame))
            now = time.perf_counter()
            fps = (1.0 / max(now - last, 1e-6)) if n == 0 else 0.9 * fps + 0.1 / max(now - last, 1e-6)
            last = now
            shown = _overlay(out, f"{fps:.1f} fps  style {live.index}{'  flow' if live.consistency else ''}") if live.overlay else out
            if writer is not None:
                writer.write(shown)
            if cv2 is not None:
                cv2.imshow("impasto", shown[:, :, ::-1])
                k = cv2.waitKey(1) & 0xFF
                if k != 0xFF and not live.key(chr(k)):
                    break
            stats.frames = n + 1
            stats.styles_seen.add(live.index)
            if n % 256 == 0:
                stats.rss_samples.append((n, _rss()))
                del stats.rss_samples[:-64]
                emit(callback, MessageEvent(f"frame {n}: {fps:.1f} fps"))
    except KeyboardInterrupt:  # Ctrl-C ends a live run like q: what was recorded is kept
        emit(callback, MessageEvent("stopped (Ctrl-C)"))
    except BaseException:
        if writer is not None:
            writer.abort()
            writer = None
        raise
    finally:
        if live is not None:
            live.close()
        if cv2 is not None:
            cv2.destroyAllWindows()
    if writer is not None:
        writer.close()
    stats.seconds = time.perf_counter() - t0
    stats.fps = stats.frames / stats.seconds if stats.seconds > 0 else 0.0
    return stats
