"""impasto.video.io: probing, reading and writing videos and frame folders."""

from __future__ import annotations

import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import require_module

av = require_module("av")

from impasto.errors import OutputError, UsageError, VideoError  # noqa: E402
from impasto.video.io import (  # noqa: E402
    VideoInfo,
    VideoWriter,
    _upright,
    is_video_output,
    probe,
    read_frames,
    write_frame_folder,
)
from tests.video.clips import make_audio, make_clip, make_frames_folder, scene  # noqa: E402


def _audio_seconds(path: Path, index: int = 0) -> float:
    """Decoded length of an audio stream."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[index]
        return sum(frame.samples for frame in container.decode(stream)) / stream.rate


def _mad(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def _one_line_error(exc: pytest.ExceptionInfo[BaseException], prefix: str) -> str:
    text = str(exc.value)
    assert text.startswith(prefix), text
    assert "\n" not in text
    return text


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_clip(tmp_path_factory.mktemp("clip") / "clip.mp4")


def _write(path: Path, frames: list[np.ndarray], info: VideoInfo, **kwargs) -> Path:
    with VideoWriter(path, fps=info.fps, size=(info.width, info.height), **kwargs) as writer:
        for frame in frames:
            writer.write(frame)
    return path


def test_round_trip_keeps_frames_rate_audio_and_pixels(clip: Path, tmp_path: Path) -> None:
    info = probe(clip)
    assert (info.kind, info.frames, info.fps, info.width, info.height) == ("file", 12, Fraction(12), 64, 48)
    assert (info.audio_streams, info.rotation, info.codec) == (1, 0, "h264")
    assert info.duration_s == pytest.approx(1.0, abs=0.05)
    frames = list(read_frames(info))
    assert len(frames) == 12
    assert all(f.shape == (48, 64, 3) and f.dtype == np.uint8 for f in frames)
    assert np.mean([_mad(f, scene(i)) for i, f in enumerate(frames)]) < 8  # the clip is what scene() draws

    out = _write(tmp_path / "out.mp4", frames, info, audio_from=info)
    again = probe(out)
    assert (again.frames, again.fps, again.width, again.height, again.audio_streams) == (12, Fraction(12), 64, 48, 1)
    assert abs(_audio_seconds(out) - _audio_seconds(clip)) < 0.1
    assert np.mean([_mad(a, b) for a, b in zip(read_frames(again), frames)]) < 6
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4"]  # no temporary files left


def test_audio_the_container_refuses_is_transcoded(clip: Path, tmp_path: Path) -> None:
    info = probe(clip)  # AAC audio: WebM takes only Opus/Vorbis, so it becomes Opus
    out = _write(tmp_path / "out.webm", list(read_frames(info)), info, audio_from=info)
    again = probe(out)
    assert (again.frames, again.fps, again.codec, again.audio_streams) == (12, Fraction(12), "vp9", 1)
    with av.open(str(out)) as container:
        assert container.streams.audio[0].codec_context.name == "opus"
    assert abs(_audio_seconds(out) - _audio_seconds(clip)) < 0.1


def _two_audio_streams(clip: Path, path: Path) -> Path:
    """``clip`` remuxed with its audio stream twice (say, two languages)."""
    with av.open(str(clip)) as src, av.open(str(path), "w") as out:
        video, audio = src.streams.video[0], src.streams.audio[0]
        routes = {video.index: [out.add_stream_from_template(video)],
                  audio.index: [out.add_stream_from_template(audio), out.add_stream_from_template(audio)]}
        for packet in src.demux(video, audio):
            if packet.dts is None:
                continue
            for target in routes[packet.stream.index]:
                copy = av.Packet(bytes(packet))
                copy.pts, copy.dts, copy.time_base, copy.stream = packet.pts, packet.dts, packet.time_base, target
                copy.is_keyframe = packet.is_keyframe
                out.mux(copy)
    return path


@pytest.mark.parametrize("suffix", [".mp4", ".webm"])
def test_every_audio_stream_is_kept(clip: Path, tmp_path: Path, suffix: str) -> None:
    info = probe(_two_audio_streams(clip, tmp_path / "two.mkv"))
    assert (info.frames, info.audio_streams) == (12, 2)
    out = _write(tmp_path / f"out{suffix}", list(read_frames(info)), info, audio_from=info)
    assert probe(out).audio_streams == 2
    assert abs(_audio_seconds(out, 0) - _audio_seconds(clip)) < 0.1
    assert abs(_audio_seconds(out, 1) - _audio_seconds(clip)) < 0.1


def test_writer_without_audio_and_with_a_fractional_rate(clip: Path, tmp_path: Path) -> None:
    info = probe(clip)
    out = _write(tmp_path / "out.mkv", list(read_frames(info)), info)
    assert probe(out).audio_streams == 0
    rate = Fraction(30000, 1001)
    with VideoWriter(tmp_path / "ntsc.mp4", fps=rate, size=(64, 48)) as writer:
        for i in range(5):
            writer.write(scene(i))
    assert (probe(tmp_path / "ntsc.mp4").fps, probe(tmp_path / "ntsc.mp4").frames) == (rate, 5)


def test_odd_sizes_are_padded_to_even(tmp_path: Path) -> None:
    frames = [scene(i, (63, 47)) for i in range(3)]
    with VideoWriter(tmp_path / "odd.mp4", fps=10, size=(63, 47)) as writer:
        for frame in frames:
            writer.write(frame)
    info = probe(tmp_path / "odd.mp4")
    assert (info.width, info.height, info.frames) == (64, 48, 3)
    assert np.mean([_mad(a[:47, :63], b) for a, b in zip(read_frames(info), frames)]) < 8


def test_start_skips_frames(clip: Path, tmp_path: Path) -> None:
    info = probe(clip)
    everything = list(read_frames(info))
    assert all(np.array_equal(a, b) for a, b in zip(read_frames(info, start=5), everything[5:], strict=True))
    assert list(read_frames(info, start=12)) == []
    folder = probe(make_frames_folder(tmp_path / "frames"))
    assert all(np.array_equal(a, scene(i + 3)) for i, a in enumerate(read_frames(folder, start=3)))
    assert len(list(read_frames(folder, start=3))) == 5
    with pytest.raises(UsageError):
        next(read_frames(info, start=-1))


def test_frames_folder_input(tmp_path: Path) -> None:
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(11):  # unpadded names: natural order, not 1, 10, 2
        Image.fromarray(scene(i)).save(folder / f"f{i + 1}.png")
    (folder / "notes.txt").write_text("not a frame")
    info = probe(folder)
    assert (info.kind, info.frames, info.fps, info.width, info.height) == ("frames", 11, Fraction(25), 64, 48)
    assert (info.audio_streams, info.rotation) == (0, 0)
    assert [p.name for p in info.frame_paths][-3:] == ["f9.png", "f10.png", "f11.png"]
    assert info.duration_s == pytest.approx(11 / 25)
    assert all(np.array_equal(a, scene(i)) for i, a in enumerate(read_frames(info)))  # PNG is lossless
    assert probe(folder, fps=10).fps == Fraction(10)


@pytest.mark.parametrize("pattern", ["%06d.png", "*.png", "0000*.png"])
def test_frame_patterns(tmp_path: Path, pattern: str) -> None:
    folder = make_frames_folder(tmp_path / "frames", frames=12)
    Image.fromarray(scene(0)).save(folder / "other.png")  # %06d and 0000* must not match it
    info = probe(str(folder / pattern), fps=12)
    expected = 13 if pattern == "*.png" else 12
    assert (info.kind, info.frames, info.fps) == ("frames", expected, Fraction(12))
    assert info.frame_paths[0].name == "000001.png"
    assert np.array_equal(next(read_frames(info)), scene(0))


def test_a_frame_of_another_size_is_named(tmp_path: Path) -> None:
    folder = make_frames_folder(tmp_path / "frames", frames=4)
    Image.fromarray(scene(0, (32, 32))).save(folder / "000003.png")
    info = probe(folder)
    with pytest.raises(VideoError) as exc:
        list(read_frames(info))
    _one_line_error(exc, f"{folder / '000003.png'}: frame 2 is 32x32")


def test_write_frame_folder_is_atomic(tmp_path: Path) -> None:
    out = write_frame_folder(tmp_path / "out", (scene(i) for i in range(3)))
    assert sorted(p.name for p in out.iterdir()) == ["000001.png", "000002.png", "000003.png"]
    assert np.array_equal(np.asarray(Image.open(out / "000002.png")), scene(1))

    def failing():
        yield scene(0)
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        write_frame_folder(tmp_path / "broken", failing())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no output, no temporary folder

    (tmp_path / "empty").mkdir()
    write_frame_folder(tmp_path / "empty", [scene(0)], start=10, pattern="{:04d}.jpg")
    assert [p.name for p in (tmp_path / "empty").iterdir()] == ["0011.jpg"]
    with pytest.raises(OutputError) as exc:
        write_frame_folder(out, [scene(0)])
    _one_line_error(exc, f"{out}: cannot write frames: the folder is not empty")
    with pytest.raises(OutputError) as exc:
        write_frame_folder(tmp_path / "missing" / "out", [scene(0)])
    _one_line_error(exc, f"{tmp_path / 'missing' / 'out'}: cannot write: folder")


def test_writer_abort_and_exceptions_leave_nothing(tmp_path: Path) -> None:
    writer = VideoWriter(tmp_path / "a.mp4", fps=12, size=(64, 48))
    writer.write(scene(0))
    writer.abort()
    with pytest.raises(RuntimeError):
        with VideoWriter(tmp_path / "b.mp4", fps=12, size=(64, 48)) as writer:
            writer.write(scene(0))
            raise RuntimeError("stop")
    (tmp_path / "c.mp4").write_bytes(b"old")
    with pytest.raises(UsageError) as exc:  # a frame of the wrong size
        with VideoWriter(tmp_path / "c.mp4", fps=12, size=(64, 48)) as writer:
            writer.write(scene(0, (32, 32)))
    _one_line_error(exc, f"{tmp_path / 'c.mp4'}: frame 0 is 32x32x3 uint8, expected 48x64x3")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.mp4"]
    assert (tmp_path / "c.mp4").read_bytes() == b"old"  # untouched


def test_unwritable_outputs(tmp_path: Path) -> None:
    with pytest.raises(OutputError) as exc:
        VideoWriter(tmp_path / "nowhere" / "x.mp4", fps=12, size=(64, 48))
    _one_line_error(exc, f"{tmp_path / 'nowhere' / 'x.mp4'}: cannot write: folder {tmp_path / 'nowhere'} does not exist")
    with pytest.raises(OutputError) as exc:
        VideoWriter(tmp_path / "x.gif", fps=12, size=(64, 48))
    _one_line_error(exc, f"{tmp_path / 'x.gif'}: unknown video format .gif")


@pytest.mark.parametrize("rotation", [90, 180, 270])
def test_rotated_clips_are_read_upright(tmp_path: Path, rotation: int) -> None:
    clip = make_clip(tmp_path / "phone.mp4", frames=3, audio=False, rotation=rotation)
    with av.open(str(clip)) as container:  # the coded frames are turned; the display matrix says so
        coded = container.streams.video[0].codec_context
        assert (coded.width, coded.height) == ((48, 64) if rotation % 180 else (64, 48))
    info = probe(clip)
    assert (info.rotation, info.width, info.height) == (rotation, 64, 48)
    frames = list(read_frames(info))
    assert frames[0].shape == (48, 64, 3)
    assert np.mean([_mad(f, scene(i)) for i, f in enumerate(frames)]) < 8


def test_upright_turns_clockwise() -> None:
    coded = np.zeros((2, 3, 3), np.uint8)
    coded[0, 0] = 255  # top-left
    assert _upright(coded, 0) is coded
    assert _upright(coded, 90).shape == (3, 2, 3) and _upright(coded, 90)[0, 1, 0] == 255  # to top-right
    assert _upright(coded, 180)[1, 2, 0] == 255  # to bottom-right
    assert _upright(coded, 270)[2, 0, 0] == 255  # to bottom-left


def _zero_frame_avi(path: Path) -> Path:
    with av.open(str(path), "w") as out:  # a video stream, no frames (MP4 would drop the empty track)
        stream = out.add_stream("libx264", rate=12)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        out.start_encoding()
    return path


@pytest.mark.parametrize(
    ("name", "make", "message"),
    [
        ("missing.mp4", lambda p: None, "no such file"),
        ("clip.txt", lambda p: p.write_text("just some text\n"), "not a video ("),
        ("still.jpg", lambda p: Image.fromarray(scene(0)).save(p), "not a video (a still image; give a folder of frames)"),
        ("still.png", lambda p: Image.fromarray(scene(0)).save(p), "not a video (a still image; give a folder of frames)"),
        ("sound.m4a", lambda p: make_audio(p), "no video stream"),
        ("sound.wav", lambda p: make_audio(p), "no video stream"),
        ("empty", lambda p: p.mkdir(), "no frames (no images in the folder)"),
        ("zero.avi", _zero_frame_avi, "no frames"),
        ("frames/%05d.png", lambda p: p.parent.mkdir(), "no frames (no files match the pattern)"),
    ],
)
def test_bad_inputs_get_one_line_naming_the_file(tmp_path: Path, name: str, make, message: str) -> None:
    path = tmp_path / name
    make(path)
    with pytest.raises(VideoError) as exc:
        probe(path)
    _one_line_error(exc, f"{path}: {message}")


@pytest.mark.parametrize("faststart", [False, True])
def test_truncated_video_is_a_video_error(tmp_path: Path, faststart: bool) -> None:
    whole = tmp_path / "whole.mp4"
    with av.open(str(whole), "w", options={"movflags": "faststart"} if faststart else {}) as out:
        stream = out.add_stream("libx264", rate=12)
        stream.width, stream.height, stream.pix_fmt = 160, 120, "yuv420p"
        for i in range(24):
            frame = av.VideoFrame.from_ndarray(scene(i, (160, 120)), format="rgb24")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    half = tmp_path / "half.mp4"
    data = whole.read_bytes()
    half.write_bytes(data[: len(data) // 2])
    with pytest.raises(VideoError) as exc:  # moov at the end: probe fails; at the start: reading does
        list(read_frames(probe(half)))
    _one_line_error(exc, f"{half}: ")


def test_absurd_resolution(clip: Path) -> None:
    with pytest.raises(VideoError) as exc:
        probe(clip, max_pixels=1000)
    _one_line_error(exc, f"{clip}: 64x48 is an absurd resolution (at most 1000 pixels per frame)")
    with pytest.raises(VideoError) as exc:
        probe(make_frames_folder(clip.parent / "frames", frames=1), max_pixels=1000)
    _one_line_error(exc, f"{clip.parent / 'frames' / '000001.png'}: 64x48 is an absurd resolution")


def test_is_video_output(tmp_path: Path) -> None:
    assert is_video_output("out.mp4") and is_video_output("a/b.MKV") and is_video_output(tmp_path / "x.webm")
    assert not is_video_output("frames") and not is_video_output("frames/") and not is_video_output("x.png")
    (tmp_path / "folder.mp4").mkdir()
    assert not is_video_output(tmp_path / "folder.mp4")


def test_frames_work_without_pyav(tmp_path: Path, clip: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "av", None)  # import av now raises ImportError
    folder = make_frames_folder(tmp_path / "frames", frames=2)
    assert len(list(read_frames(probe(folder)))) == 2
    with pytest.raises(UsageError) as exc:
        probe(clip)
    _one_line_error(exc, f"{clip}: reading videos needs PyAV: pip install 'impasto[video]'")
