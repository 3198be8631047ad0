"""Reading and writing videos: video files (through PyAV/FFmpeg) and folders of frame images.

``probe`` describes an input (:class:`VideoInfo`), ``read_frames`` yields its frames as HxWx3 uint8
RGB arrays, upright as displayed; :class:`VideoWriter` and :func:`write_frame_folder` write outputs
atomically. Every error is one line that starts with the file name. PyAV is imported only when a
video file is read or written, so frame folders work without it.
"""

from __future__ import annotations

import contextlib
import heapq
import os
import re
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import ModuleType, TracebackType
from typing import Any, Iterable, Iterator

import numpy as np

from ..atomic import check_writable
from ..errors import OutputError, UsageError, VideoError

__all__ = [
    "MAX_FRAME_PIXELS", "IMAGE_EXTENSIONS", "VIDEO_EXTENSIONS", "VideoInfo", "probe", "read_frames",
    "VideoWriter", "write_frame_folder", "is_video_output",
]

MAX_FRAME_PIXELS = 8192 * 8192
IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"})
VIDEO_EXTENSIONS = frozenset({".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v"})
DEFAULT_FOLDER_FPS = Fraction(25)

_PRINTF = re.compile(r"%(\d*)d")
_IMAGE_DEMUXERS = ("image2", "image2pipe", "gif", "apng", "webp", "ico")  # and every *_pipe demuxer


@dataclass(frozen=True)
class VideoInfo:
    """What :func:`probe` found out about a video file or a folder of frames."""

    path: Path
    kind: str  # "file" or "frames"
    width: int  # display width (after rotation)
    height: int  # display height (after rotation)
    fps: Fraction
    frames: int
    duration_s: float | None
    rotation: int  # degrees clockwise the display turns the coded frames: 0, 90, 180 or 270
    audio_streams: int
    codec: str | None
    frame_paths: tuple[Path, ...] = ()


def _av(path: object, what: str = "reading videos") -> ModuleType:
    try:
        import av
    except ImportError:
        raise UsageError(f"{path}: {what} needs PyAV: pip install 'impasto[video]'") from None
    return av


def _reason(exc: BaseException) -> str:
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return " ".join(str(text).split())


def _as_fps(fps: float | Fraction) -> Fraction:
    try:
        value = fps if isinstance(fps, Fraction) else Fraction(fps).limit_denominator(1001)
    except (TypeError, ValueError, OverflowError):
        raise UsageError(f"fps must be a number > 0, got {fps!r}", params="fps") from None
    if value <= 0:
        raise UsageError(f"fps must be > 0, got {fps}", params="fps")
    return value


def _natural_key(path: Path) -> tuple[Any, ...]:
    parts = re.split(r"(\d+)", path.name.lower())
    return tuple(int(p) if i % 2 else p for i, p in enumerate(parts))


def _images(paths: Iterable[Path]) -> tuple[Path, ...]:
    return tuple(sorted((p for p in paths if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()), key=_natural_key))


def _pattern_paths(source: str) -> tuple[Path, ...] | None:
    """The frames a printf (``%05d``) or glob (``*.png``) pattern names; None if it is not one."""
    folder, name = os.path.split(source)
    base = Path(folder or ".")
    printf = _PRINTF.search(name)
    if printf:
        width = int(printf.group(1) or 0)
        digits = rf"\d{{{width}}}" if printf.group(1).startswith("0") and width else r"\d+"
        rx = re.compile(re.escape(name[: printf.start()]) + f"({digits})" + re.escape(name[printf.end():]) + r"\Z")
        found = [p for p in base.iterdir() if rx.match(p.name)] if base.is_dir() else []
        return tuple(sorted(found, key=lambda p: int(rx.match(p.name).group(1))))  # type: ignore[union-attr]
    if any(c in name for c in "*?["):
        return _images(base.glob(name)) if base.is_dir() else ()
    return None


def probe(source: str | os.PathLike[str], *, fps: float | None = None, max_pixels: int = MAX_FRAME_PIXELS) -> VideoInfo:
    """Describe a video file, a folder of frame images or a frame pattern (``frames/%05d.png``,
    ``frames/*.png``). ``fps`` sets the frame rate (frames default to 25). Raises VideoError."""
    if max_pixels <= 0:
        raise UsageError(f"max_pixels must be > 0, got {max_pixels}", params="max_pixels")
    path = Path(source)
    rate = None if fps is None else _as_fps(fps)
    if path.exists() and not path.is_dir():
        return _probe_file(path, rate, max_pixels)
    paths = _images(path.iterdir()) if path.is_dir() else _pattern_paths(str(source))
    if paths is None:
        raise VideoError(f"{source}: no such file")
    if not paths:
        raise VideoError(f"{source}: no frames (no {'images in the folder' if path.is_dir() else 'files match the pattern'})")
    return _probe_frames(path, paths, rate or DEFAULT_FOLDER_FPS, max_pixels)


def _probe_frames(path: Path, paths: tuple[Path, ...], fps: Fraction, max_pixels: int) -> VideoInfo:
    from PIL import Image, UnidentifiedImageError

    first = paths[0]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(first) as img:
                width, height = img.size
                codec = (img.format or "").lower() or None
                if img.getexif().get(0x0112, 1) in (5, 6, 7, 8):  # EXIF orientation turns it a quarter
                    width, height = height, width
    except (OSError, UnidentifiedImageError, Image.DecompressionBombError, SyntaxError, ValueError) as exc:
        raise VideoError(f"{first}: frame 0 cannot be decoded ({_reason(exc)})") from None
    _check_size(first, width, height, max_pixels)
    return VideoInfo(path, "frames", width, height, fps, len(paths), float(len(paths) / fps), 0, 0, codec, paths)


def _check_size(path: object, width: int, height: int, max_pixels: int) -> None:
    if width * height > max_pixels:
        raise VideoError(f"{path}: {width}x{height} is an absurd resolution (at most {max_pixels} pixels per frame)")


def _video_stream(container: Any) -> Any:
    for stream in container.streams.video:
        attached = getattr(getattr(type(stream.disposition), "attached_pic", None), "value", 0)
        if not (int(stream.disposition) & attached):  # skip cover art
            return stream
    return None


def _open(av: ModuleType, path: Path) -> Any:
    try:
        return av.open(str(path), metadata_errors="replace")
    except PermissionError:
        raise VideoError(f"{path}: cannot be read (permission denied)") from None
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise VideoError(f"{path}: not a video ({_reason(exc)})") from None


def _rotation(frame: Any, stream: Any) -> int:
    """Degrees clockwise (0/90/180/270) the display turns the coded frames."""
    ccw = getattr(frame, "rotation", None)  # PyAV >= 14: the display matrix, counter-clockwise
    if ccw is None:
        try:
            ccw = -float(stream.metadata.get("rotate", 0))
        except ValueError:
            ccw = 0
    return int(round(-float(ccw) / 90.0)) % 4 * 90


def _rate(stream: Any, frames: int, duration: float | None) -> Fraction:
    avg, base = stream.average_rate, getattr(stream, "base_rate", None)
    if avg and base and avg > 0 and abs(float(avg) / float(base) - 1) < 1e-3:
        return Fraction(base)  # the nominal rate when the measured one agrees (Matroska rounds to ms)
    for rate in (avg, getattr(stream, "guessed_rate", None), base):
        if rate and rate > 0:
            return Fraction(rate)
    if duration:
        return Fraction(frames / duration).limit_denominator(1001)
    return DEFAULT_FOLDER_FPS


def _probe_file(path: Path, fps: Fraction | None, max_pixels: int) -> VideoInfo:
    av = _av(path)
    with _open(av, path) as container:
        fmt = container.format.name
        stream = _video_stream(container)
        still = fmt.endswith("_pipe") or fmt in _IMAGE_DEMUXERS
        if still and (stream is None or stream.frames <= 1):
            raise VideoError(f"{path}: not a video (a still image; give a folder of frames)")
        if stream is None:
            audio_only = " (audio only)" if container.streams.audio else ""
            raise VideoError(f"{path}: no video stream{audio_only}")
        cc = stream.codec_context
        _check_size(path, cc.width, cc.height, max_pixels)
        stream.thread_type = "AUTO"
        decoded = _decode(av, path, container, stream)
        first = next(decoded, None)
        if first is None:
            raise VideoError(f"{path}: no frames")
        width, height, rotation = first.width, first.height, _rotation(first, stream)
        _check_size(path, width, height, max_pixels)
        # MP4/MOV count their samples exactly; other containers (AVI pads gaps, Matroska has no
        # count) are counted by decoding
        exact = fmt.startswith("mov,mp4") and stream.frames and stream.frames > 0
        frames = stream.frames if exact else 1 + sum(1 for _ in decoded)
        duration = None
        if stream.duration and stream.time_base:
            duration = float(stream.duration * stream.time_base)
        elif container.duration:
            duration = container.duration / 1_000_000
        rate = fps or _rate(stream, frames, duration)
        if rotation in (90, 270):
            width, height = height, width
        return VideoInfo(path, "file", width, height, rate, frames, duration if duration else float(frames / rate),
                         rotation, len(container.streams.audio), cc.name)


def _decode(av: ModuleType, path: Path, container: Any, stream: Any) -> Iterator[Any]:
    """The decoded frames of ``stream``; a decoding failure is a VideoError naming the frame."""
    index = 0
    frames = container.decode(stream)
    while True:
        try:
            frame = next(frames)
        except StopIteration:
            return
        except (av.FFmpegError, OSError, ValueError, MemoryError) as exc:
            raise VideoError(f"{path}: frame {index} cannot be decoded ({_reason(exc)})") from None
        yield frame
        index += 1


def _upright(array: np.ndarray, rotation: int) -> np.ndarray:
    """Turn coded pixels ``rotation`` degrees clockwise, as the display does."""
    if rotation % 360 == 0:
        return array
    return np.ascontiguousarray(np.rot90(array, k=-(rotation // 90)))


def read_frames(info: VideoInfo, start: int = 0) -> Iterator[np.ndarray]:
    """Yield the frames of ``info`` from index ``start`` on: HxWx3 uint8 RGB, upright as displayed.
    Frame numbers in errors are 0-based indices like ``start``. Raises VideoError."""
    if start < 0:
        raise UsageError(f"start must be >= 0, got {start}", params="start")
    if info.kind == "frames":
        return _read_folder(info, start)
    return _read_file(_av(info.path), info, start)


def _read_file(av: ModuleType, info: VideoInfo, start: int) -> Iterator[np.ndarray]:
    with _open(av, info.path) as container:
        stream = _video_stream(container)
        if stream is None:
            raise VideoError(f"{info.path}: no video stream")
        stream.thread_type = "AUTO"
        decoded = _decode(av, info.path, container, stream)
        for index in range(info.frames):
            frame = next(decoded, None)
            if frame is None:
                raise VideoError(f"{info.path}: frame {index} cannot be decoded "
                                 f"(the video ends after {index} of {info.frames} frames; truncated?)")
            if index >= start:
                try:
                    array = frame.to_ndarray(format="rgb24")
                except (av.FFmpegError, ValueError) as exc:
                    raise VideoError(f"{info.path}: frame {index} cannot be decoded ({_reason(exc)})") from None
                yield _upright(array, info.rotation)


def _read_folder(info: VideoInfo, start: int) -> Iterator[np.ndarray]:
    from PIL import Image, ImageOps, UnidentifiedImageError

    for index in range(start, info.frames):
        path = info.frame_paths[index]
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                with Image.open(path) as img:
                    size = img.size
                    same = size[0] * size[1] == info.width * info.height  # before decoding a huge one
                    array = np.asarray(ImageOps.exif_transpose(img).convert("RGB")) if same else None
        except (OSError, UnidentifiedImageError, Image.DecompressionBombError, SyntaxError, ValueError) as exc:
            raise VideoError(f"{path}: frame {index} cannot be decoded ({_reason(exc)})") from None
        if array is None or array.shape[:2] != (info.height, info.width):
            width, height = size if array is None else (array.shape[1], array.shape[0])
            raise VideoError(f"{path}: frame {index} is {width}x{height}, the first frame is {info.width}x{info.height}")
        yield array


def is_video_output(output: str | os.PathLike[str]) -> bool:
    """True when ``output`` names a video file (a known video extension); False for a folder."""
    text = os.fspath(output)
    if text.endswith(("/", os.sep)) or Path(text).is_dir():
        return False
    return Path(text).suffix.lower() in VIDEO_EXTENSIONS


def _temp_file(final: Path, tag: str) -> Path:
    fd, name = tempfile.mkstemp(prefix=f".{final.stem}.", suffix=f".{tag}{final.suffix}", dir=final.parent)
    os.close(fd)
    os.chmod(name, 0o666 & ~_umask())  # mkstemp makes 0600; give the file normal permissions
    return Path(name)


class VideoWriter:
    """Writes frames to a video file atomically: encodes to a temporary file next to `output`, copies
    the audio streams of `audio_from` (if given and it has audio), renames onto `output` in close().
    abort() (or an exception inside a `with` block) removes the temporary file and leaves `output`
    untouched.

    The container comes from the extension; the codec defaults to H.264 (libx264, yuv420p, ``crf``)
    and to VP9 for ``.webm``. yuv420p needs even sizes: an odd width or height is padded by
    repeating the last column or row, so the video is then one pixel wider or taller than ``size``.
    Audio is copied unchanged when the container takes its codec, otherwise transcoded (AAC; Opus
    for .webm). Frames are timed at exactly ``fps`` (constant frame rate).
    """

    def __init__(self, output: str | os.PathLike[str], *, fps: Fraction | float, size: tuple[int, int],
                 audio_from: VideoInfo | None = None, crf: int = 18, codec: str | None = None) -> None:
        self.output = check_writable(output)
        suffix = self.output.suffix.lower()
        if suffix not in VIDEO_EXTENSIONS:
            raise OutputError(f"{self.output}: unknown video format {suffix or '(no extension)'} "
                              f"(use {', '.join(sorted(VIDEO_EXTENSIONS))})")
        self.fps: Fraction = _as_fps(fps)  # type: ignore[assignment]
        width, height = (int(v) for v in size)
        if width <= 0 or height <= 0:
            raise UsageError(f"size must be positive (width, height), got {tuple(size)}", params="size")
        self.size = (width, height)
        self._pad = (width % 2, height % 2)
        self.audio_from = audio_from if audio_from is not None and audio_from.kind == "file" and audio_from.audio_streams else None
        self.codec = codec or ("libvpx-vp9" if suffix == ".webm" else "libx264")
        max_crf = 51 if self.codec == "libx264" else 63
        if not 0 <= crf <= max_crf:
            raise UsageError(f"crf must be between 0 and {max_crf}, got {crf}", params="crf")
        self._av = _av(self.output, "writing videos")
        self._count = 0
        self._done = False
        self._temps: list[Path] = [_temp_file(self.output, "part")]
        try:
            self._container = self._av.open(str(self._temps[0]), "w")
            self._stream = self._container.add_stream(self.codec, rate=self.fps, options=self._options(crf))
            self._stream.width, self._stream.height = width + self._pad[0], height + self._pad[1]
            self._stream.pix_fmt = "yuv420p"
            self._stream.codec_context.time_base = 1 / self.fps
        except (self._av.FFmpegError, ValueError, OSError) as exc:
            self.abort()
            raise OutputError(f"{self.output}: cannot write with codec {self.codec} ({_reason(exc)})") from None

    def _options(self, crf: int) -> dict[str, str]:
        if self.codec == "libx264":  # AVI cannot delay B-frames: the video would lag the audio
            return {"crf": str(crf), **({"bf": "0"} if self.output.suffix.lower() == ".avi" else {})}
        if self.codec == "libvpx-vp9":
            return {"crf": str(crf), "b": "0", "row-mt": "1", "deadline": "good", "cpu-used": "4"}
        return {}

    def write(self, frame: np.ndarray) -> None:
        """Encode one HxWx3 uint8 RGB frame of ``size``."""
        if self._done:
            raise UsageError(f"{self.output}: the writer is closed")
        width, height = self.size
        if not isinstance(frame, np.ndarray) or frame.shape != (height, width, 3) or frame.dtype != np.uint8:
            got = f"{'x'.join(map(str, frame.shape))} {frame.dtype}" if isinstance(frame, np.ndarray) else type(frame).__name__
            raise UsageError(f"{self.output}: frame {self._count} is {got}, expected {height}x{width}x3 uint8 RGB")
        if any(self._pad):
            frame = np.pad(frame, ((0, self._pad[1]), (0, self._pad[0]), (0, 0)), mode="edge")
        av = self._av
        try:
            video_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
            video_frame.pts = self._count
            video_frame.time_base = 1 / self.fps
            self._container.mux(self._stream.encode(video_frame))
        except BaseException as exc:
            self.abort()
            if isinstance(exc, (av.FFmpegError, OSError, ValueError)):
                raise OutputError(f"{self.output}: cannot write frame {self._count} ({_reason(exc)})") from None
            raise
        self._count += 1

    def close(self) -> Path:
        """Flush the encoder, add the audio, rename onto ``output``; returns the output path."""
        if self._done:
            return self.output
        if self._count == 0:
            self.abort()
            raise UsageError(f"{self.output}: no frames were written")
        av = self._av
        try:
            self._container.mux(self._stream.encode(None))
            self._container.close()
            final = self._temps[0]
            if self.audio_from is not None:
                final = _temp_file(self.output, "mux")
                self._temps.append(final)
                try:
                    _mux_audio(av, self._temps[0], self.audio_from.path, final, transcode=False)
                except (av.FFmpegError, ValueError):  # the container refuses the codec: transcode
                    _mux_audio(av, self._temps[0], self.audio_from.path, final, transcode=True)
            os.replace(final, self.output)
        except BaseException as exc:
            self.abort()
            if isinstance(exc, (av.FFmpegError, OSError, ValueError)):
                raise OutputError(f"{self.output}: cannot write ({_reason(exc)})") from None
            raise
        self._done = True
        for temp in self._temps:
            with contextlib.suppress(OSError):
                temp.unlink()
        return self.output

    def abort(self) -> None:
        """Stop writing: remove the temporary files; ``output`` is left untouched."""
        self._done = True
        container = getattr(self, "_container", None)
        if container is not None:
            with contextlib.suppress(Exception):
                container.close()
        for temp in getattr(self, "_temps", []):
            with contextlib.suppress(OSError):
                temp.unlink()

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def _mux_audio(av: ModuleType, video: Path, source: Path, target: Path, *, transcode: bool) -> None:
    """Write ``target``: the video stream of ``video`` plus every audio stream of ``source``,
    copied unchanged (``transcode=False``) or re-encoded (AAC, Opus for webm), interleaved by time."""
    with av.open(str(video)) as vin, av.open(str(source), metadata_errors="replace") as ain, \
            av.open(str(target), "w") as out:
        vstream = vin.streams.video[0]
        vout = out.add_stream_from_template(vstream)
        src_video = _video_stream(ain)
        offset = float(src_video.start_time * src_video.time_base) if src_video is not None and src_video.start_time else 0.0
        routes: dict[int, Any] = {}
        for stream in ain.streams.audio:
            if transcode:
                name = "libopus" if target.suffix.lower() == ".webm" else "aac"
                rates = av.codec.Codec(name, "w").audio_rates or ()
                rate = stream.rate if not rates or stream.rate in rates else 48000
                layout = stream.layout.name if stream.layout and stream.channels <= 2 else "stereo"
                routes[stream.index] = out.add_stream(name, rate=rate, layout=layout)
            else:
                routes[stream.index] = out.add_stream_from_template(stream)
        out.start_encoding()
        audio = (_transcoded if transcode else _copied)(ain, routes, offset)
        video_packets = _copied(vin, {vstream.index: vout}, 0.0)
        for _, packet in heapq.merge(video_packets, audio, key=lambda item: item[0]):
            out.mux(packet)


def _copied(container: Any, routes: dict[int, Any], offset: float) -> Iterator[tuple[float, Any]]:
    """The demuxed packets of the streams in ``routes`` (input index -> output stream), retargeted
    and moved ``offset`` seconds earlier, with their time in seconds."""
    streams = [s for s in container.streams if s.index in routes]
    for packet in container.demux(*streams):
        if packet.dts is None and packet.pts is None:
            continue  # a flush packet
        if offset and packet.time_base:
            delta = int(round(offset / packet.time_base))
            packet.pts = None if packet.pts is None else packet.pts - delta
            packet.dts = None if packet.dts is None else packet.dts - delta
        stamp = packet.dts if packet.dts is not None else packet.pts
        time = float(stamp * packet.time_base)
        packet.stream = routes[packet.stream.index]
        yield time, packet


def _transcoded(container: Any, routes: dict[int, Any], offset: float) -> Iterator[tuple[float, Any]]:
    """Decode the streams in ``routes`` and encode each with its output stream's codec."""
    def timed(packets: list[Any]) -> Iterator[tuple[float, Any]]:
        for packet in packets:
            stamp = packet.dts if packet.dts is not None else (packet.pts or 0)
            yield float(stamp * packet.time_base), packet

    streams = [s for s in container.streams if s.index in routes]
    for packet in container.demux(*streams):
        out = routes[packet.stream.index]
        for frame in packet.decode():
            if frame.pts is not None and offset:
                frame.pts -= int(round(offset / frame.time_base))
            yield from timed(out.encode(frame))
    for out in routes.values():
        yield from timed(out.encode(None))


def write_frame_folder(output: str | os.PathLike[str], frames: Iterable[np.ndarray], *, start: int = 0,
                       pattern: str = "{:06d}.png") -> Path:
    """Write ``frames`` (HxWx3 uint8 RGB) as images named ``pattern.format(start + i + 1)`` into a
    temporary sibling folder, renamed onto ``output`` at the end; ``output`` must not exist or be an
    empty folder. On any exception nothing is left behind. Returns ``output``."""
    from PIL import Image

    out = Path(output)
    try:
        pattern.format(1)
    except (IndexError, KeyError, ValueError):
        raise UsageError(f"pattern must hold one {{}} field for the frame number, got {pattern!r}", params="pattern") from None
    if out.exists():
        if not out.is_dir():
            raise OutputError(f"{out}: cannot write frames: it exists and is not a folder")
        if any(out.iterdir()):
            raise OutputError(f"{out}: cannot write frames: the folder is not empty")
        parent = out.parent
        if not os.access(parent, os.W_OK):
            raise OutputError(f"{out}: cannot write: folder {parent} is not writable")
    else:
        check_writable(out)
    temp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".part", dir=out.parent))
    try:
        count = 0
        for count, frame in enumerate(frames, start=1):
            if not isinstance(frame, np.ndarray) or frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
                got = getattr(frame, "shape", type(frame).__name__)
                raise UsageError(f"{out}: frame {count - 1} is {got}, expected HxWx3 uint8 RGB")
            try:
                Image.fromarray(frame).save(temp / pattern.format(start + count))
            except (OSError, ValueError, KeyError) as exc:
                raise OutputError(f"{out}: cannot write frame {count - 1} ({_reason(exc)})") from None
        if count == 0:
            raise UsageError(f"{out}: no frames to write")
        os.chmod(temp, 0o777 & ~_umask())
        if out.exists():
            out.rmdir()
        os.replace(temp, out)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise
    return out


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
