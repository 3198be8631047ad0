"""Tiny synthetic test clips (deterministic), shared by the video tests.

``scene(i)`` is a smooth-noise texture with a red disc and a blue square; the whole scene translates
by ``shift`` = (dx, dy) pixels per frame, so frame i+1 at (x, y) equals frame i at (x - dx, y - dy)
and the true optical flow from one frame to the next is ``shift`` everywhere except the strip of
new content entering at the border. ``make_clip`` encodes it (with a 440 Hz sine audio track),
``make_frames_folder`` saves it as PNG frames.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image

__all__ = ["scene", "make_clip", "make_frames_folder", "make_audio", "TEXTURE_PERIOD"]

TEXTURE_PERIOD = 128  # the background repeats every 128 px in x and y
_CELL = 8  # smooth noise: random values on an 8 px grid, bilinearly interpolated


def _texture(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    cells = TEXTURE_PERIOD // _CELL
    return rng.uniform(50.0, 200.0, size=(cells, cells, 3))


def scene(i: int, size: tuple[int, int] = (64, 48), shift: tuple[int, int] = (2, 1), seed: int = 0) -> np.ndarray:
    """Frame ``i`` as HxWx3 uint8 RGB: the pixels ``make_clip`` encodes (before compression)."""
    width, height = size
    dx, dy = shift
    grid = _texture(seed)
    cells = grid.shape[0]
    # scene coordinates of the pixels: content moves by +shift per frame
    xs = (np.arange(width) - i * dx) / _CELL
    ys = (np.arange(height) - i * dy) / _CELL
    x0, y0 = np.floor(xs).astype(int), np.floor(ys).astype(int)
    fx, fy = (xs - x0)[None, :, None], (ys - y0)[:, None, None]
    x0, y0 = x0 % cells, y0 % cells
    x1, y1 = (x0 + 1) % cells, (y0 + 1) % cells
    top = grid[y0][:, x0] * (1 - fx) + grid[y0][:, x1] * fx
    bottom = grid[y1][:, x0] * (1 - fx) + grid[y1][:, x1] * fx
    image = top * (1 - fy) + bottom * fy
    sx = np.arange(width)[None, :] - i * dx
    sy = np.arange(height)[:, None] - i * dy
    disc = (sx - width * 0.3) ** 2 + (sy - height * 0.35) ** 2 <= (min(width, height) * 0.18) ** 2
    side = max(2, min(width, height) // 5)
    square = (sx >= width * 0.55) & (sx < width * 0.55 + side) & (sy >= height * 0.5) & (sy < height * 0.5 + side)
    image[disc] = (230, 40, 40)
    image[square] = (40, 60, 230)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def _sine(samples: int, rate: int, start: int = 0) -> np.ndarray:
    t = (np.arange(samples) + start) / rate
    return (0.3 * np.sin(2 * np.pi * 440.0 * t)).astype(np.float32)


def _audio_frame(av, chunk: np.ndarray, stream, pts: int):  # noqa: ANN001, ANN202
    fmt = stream.codec_context.format.name
    if fmt.startswith("s16"):
        data = (chunk * 32767).astype(np.int16)
    else:
        data = chunk.astype(np.float32)
    frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(data[None, :]), format=fmt, layout="mono")  # mono: 1 x n
    frame.sample_rate = stream.rate
    frame.pts = pts
    return frame


def make_clip(path: Path, *, frames: int = 12, size: tuple[int, int] = (64, 48), fps: int = 12, audio: bool = True,
              shift: tuple[int, int] = (2, 1), seed: int = 0, audio_codec: str | None = None,
              rotation: int = 0) -> Path:
    """Encode ``frames`` frames of :func:`scene` (H.264 mp4/mov/mkv/avi, VP9 webm, by extension) plus,
    when ``audio``, a 440 Hz mono sine track of the same duration (AAC, Opus for webm, or
    ``audio_codec``). ``rotation`` (clockwise degrees) tags the stream with a display matrix: the
    coded pixels are then ``scene`` turned back, so the clip *displays* upright. Deterministic."""
    import av

    path = Path(path)
    webm = path.suffix.lower() == ".webm"
    rate = 48000
    with av.open(str(path), "w") as out:
        video = out.add_stream("libvpx-vp9" if webm else "libx264", rate=Fraction(fps),
                               options={"crf": "18", "b": "0"} if webm else {"crf": "18"})
        quarter = (rotation // 90) % 4
        width, height = size if quarter % 2 == 0 else size[::-1]
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.codec_context.time_base = Fraction(1, fps)
        if quarter:
            video.set_display_rotation(-90 * quarter)  # PyAV takes counter-clockwise degrees
        sound = None
        if audio:
            sound = out.add_stream(audio_codec or ("libopus" if webm else "aac"), rate=rate, layout="mono")
        out.start_encoding()
        written = 0
        chunk = (sound.codec_context.frame_size or 1024) if sound is not None else 0
        total = frames * rate // fps
        for i in range(frames):
            pixels = np.ascontiguousarray(np.rot90(scene(i, size, shift, seed), k=quarter))
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            frame.pts = i
            out.mux(video.encode(frame))
            while sound is not None and written < min(total, (i + 1) * rate // fps):
                n = min(chunk, total - written)
                out.mux(sound.encode(_audio_frame(av, _sine(n, rate, written), sound, written)))
                written += n
        out.mux(video.encode(None))
        if sound is not None:
            out.mux(sound.encode(None))
    return path


def make_audio(path: Path, *, seconds: float = 1.0, codec: str | None = None) -> Path:
    """An audio-only file (a 440 Hz sine): AAC for .m4a, PCM for .wav, or ``codec``."""
    import av

    path = Path(path)
    rate = 48000
    with av.open(str(path), "w") as out:
        sound = out.add_stream(codec or ("pcm_s16le" if path.suffix.lower() == ".wav" else "aac"), rate=rate, layout="mono")
        out.start_encoding()
        chunk = sound.codec_context.frame_size or 1024
        total = int(seconds * rate)
        for start in range(0, total, chunk):
            n = min(chunk, total - start)
            out.mux(sound.encode(_audio_frame(av, _sine(n, rate, start), sound, start)))
        out.mux(sound.encode(None))
    return path


def make_frames_folder(path: Path, *, frames: int = 8, size: tuple[int, int] = (64, 48), shift: tuple[int, int] = (2, 1),
                       seed: int = 0) -> Path:
    """Save ``frames`` frames of :func:`scene` as ``path/000001.png`` ... (the folder is created)."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    for i in range(frames):
        Image.fromarray(scene(i, size, shift, seed)).save(path / f"{i + 1:06d}.png")
    return path
