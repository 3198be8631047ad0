"""`impasto gatys` in-process: outputs, manifest, snapshots, Ctrl-C, resume, and every bad input."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from impasto.cli.main import main

FAST = ["--encoder", "tiny_vgg", "--weights", "random", "--edge", "48", "--scales", "48", "-n", "6", "-q"]


def _files(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


@pytest.fixture
def pair(write_image):
    return write_image("content.png", 48, 64, seed=1), write_image("style.jpg", 48, 48, seed=2)


def test_writes_output_and_manifest(pair, tmp_path, capsys):
    content, style = pair
    out = tmp_path / "out.png"
    assert main(["gatys", str(content), str(style), "-o", str(out), *FAST]) == 0
    manifest = json.loads((tmp_path / "out.png.json").read_text())
    assert manifest["status"] == "completed" and manifest["iterations_run"] == 6
    assert manifest["config"]["encoder"] == "tiny_vgg" and manifest["content"]["path"] == str(content)
    from impasto.image.io import load_image, read_metadata

    assert load_image(out).image.shape[-2:] == (36, 48)
    assert read_metadata(out)["seed"] == 0
    assert "wrote" in capsys.readouterr().err


def test_unset_flags_keep_the_config_defaults(pair, tmp_path):
    content, style = pair
    main(["gatys", str(content), str(style), "-o", str(tmp_path / "o.png"), *FAST])
    cfg = json.loads((tmp_path / "o.png.json").read_text())["config"]
    from impasto.methods.gatys import GatysConfig

    assert cfg["style_weight"] == GatysConfig().style_weight and cfg["optimizer"] == "lbfgs"


def test_snapshots_are_written_while_it_runs(pair, tmp_path):
    content, style = pair
    out = tmp_path / "o.png"
    assert main(["gatys", str(content), str(style), "-o", str(out), *FAST, "-n", "10", "--save-every", "3"]) == 0
    assert {"o.step0003.png", "o.step0006.png", "o.step0009.png", "o.png", "o.png.json"} <= _files(tmp_path)


def _interrupt_after(monkeypatch, calls: int) -> None:
    from impasto.losses.modules import PerceptualLoss

    real = PerceptualLoss.forward
    state = {"n": 0}

    def forward(self, *a, **k):
        state["n"] += 1
        if state["n"] > calls:
            raise KeyboardInterrupt
        return real(self, *a, **k)

    monkeypatch.setattr(PerceptualLoss, "forward", forward)


def test_ctrl_c_saves_the_current_image_and_resume_continues(pair, tmp_path, monkeypatch, capsys):
    content, style = pair
    out = tmp_path / "o.png"
    _interrupt_after(monkeypatch, 8)  # 1 call for init checks? no: one per L-BFGS step
    code = main(["gatys", str(content), str(style), "-o", str(out), *FAST, "-n", "12", "--save-every", "4"])
    assert code == 130 and out.exists()
    err = capsys.readouterr().err
    assert "interrupted: saved the current image" in err and "--resume" in err
    m = json.loads((tmp_path / "o.png.json").read_text())
    assert m["status"] == "interrupted" and m["snapshot"]["step"] == 8
    monkeypatch.undo()
    assert main(["gatys", "--resume", str(tmp_path / "o.png.json"), "-q"]) == 0
    m2 = json.loads((tmp_path / "o.png.json").read_text())
    assert m2["status"] == "completed"
    assert m2["levels"][-1]["iterations"] == 12  # continued from step 8 of 12, not restarted
    assert m2["iterations_run"] == 12 and m2["resumed_from"].endswith("o.png.json")
    assert not (tmp_path / "o.png.resume.pt").exists()  # a finished run leaves no resume state


LADDER = ["--encoder", "tiny_vgg", "--weights", "random", "--edge", "64", "--scales", "32,64", "--scale-iterations", "8,6", "--save-every", "3", "-q"]


def test_interrupt_twice_resume_twice_equals_one_uninterrupted_run(pair, tmp_path, monkeypatch, capsys):
    """Ctrl-C inside an evaluation of the coarse level, then between the two levels (while the
    fine level's style targets are computed): the resumed runs end on the same image, step count
    and loss history as a run that was never stopped, and snapshots are numbered by absolute step."""
    from impasto.image.io import load_image
    from impasto.methods import gatys as gatys_mod

    content, style = pair
    whole_dir, cut_dir = tmp_path / "whole", tmp_path / "cut"
    whole_dir.mkdir(), cut_dir.mkdir()
    assert main(["gatys", str(content), str(style), "-o", str(whole_dir / "o.png"), *LADDER]) == 0
    out = cut_dir / "o.png"

    _interrupt_after(monkeypatch, 4)  # during the 5th evaluation of the 32 px level
    assert main(["gatys", str(content), str(style), "-o", str(out), *LADDER]) == 130
    m = json.loads((cut_dir / "o.png.json").read_text())
    assert m["status"] == "interrupted" and m["iterations_run"] == 4 and m["resume"]["step"] == 4
    assert (cut_dir / "o.png.resume.pt").exists()
    monkeypatch.undo()

    real = gatys_mod._style_stats
    calls = {"n": 0}

    def stats_then_interrupt(*a, **k):  # the second level's targets: the awkward moment
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(gatys_mod, "_style_stats", stats_then_interrupt)
    assert main(["gatys", "--resume", str(cut_dir / "o.png.json"), "-q"]) == 130
    m = json.loads((cut_dir / "o.png.json").read_text())
    assert m["status"] == "interrupted" and m["iterations_run"] == 8 and m["resume"] == {**m["resume"], "level": 1, "step": 0}
    monkeypatch.undo()

    assert main(["gatys", "--resume", str(cut_dir / "o.png.json"), "-q"]) == 0
    a = json.loads((whole_dir / "o.png.json").read_text())
    b = json.loads((cut_dir / "o.png.json").read_text())
    assert b["status"] == "completed" and b["iterations_run"] == a["iterations_run"] == 14
    assert [lv["iterations"] for lv in b["levels"]] == [lv["iterations"] for lv in a["levels"]] == [8, 6]
    assert b["loss_history"] == a["loss_history"]
    assert torch.equal(load_image(out).image, load_image(whole_dir / "o.png").image)
    names = {p.name for p in cut_dir.iterdir()}
    assert {"o.s0.step0003.png", "o.s0.step0006.png", "o.step0003.png"} <= names  # absolute step numbers
    assert "o.png.resume.pt" not in names


def test_resume_without_snapshot_is_a_clear_error(pair, tmp_path, capsys):
    content, style = pair
    main(["gatys", str(content), str(style), "-o", str(tmp_path / "o.png"), *FAST])
    assert main(["gatys", "--resume", str(tmp_path / "o.png.json")]) == 2
    assert "the run finished (6 iterations); there is nothing to resume" in capsys.readouterr().err


BAD = {
    "empty.jpg": "empty file",
    "text-pretending.jpg": "not an image",
    "truncated.jpg": "truncated",
    "a-directory.jpg": "is a directory",
    "vector.svg": "SVG",
    "bomb-100000x100000.png": "--max-pixels",
    "one-pixel.png": "needs at least 16 px",
}


@pytest.mark.parametrize("name", sorted(BAD))
@pytest.mark.parametrize("role", ["content", "style"])
def test_bad_inputs_get_one_line_exit_2_and_no_output(bad_inputs, write_image, tmp_path, capsys, name, role):
    good = write_image("good.png", 48, 64)
    bad = bad_inputs / name
    args = [str(bad), str(good)] if role == "content" else [str(good), str(bad)]
    out_dir = tmp_path / "outdir"
    out_dir.mkdir()
    code = main(["gatys", *args, "-o", str(out_dir / "o.png"), *FAST])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert err.startswith("impasto: error: ") and str(bad) in err and BAD[name] in err
    assert _files(out_dir) == set()


@pytest.mark.parametrize("name", ["cmyk.jpg", "gray.png", "gray16.png", "half-transparent.png", "animated.gif", "exif-rotated-90.jpg", "webp.webp", "bmp.bmp", "tiff.tiff", "sliver-4000x6.png"])
def test_awkward_inputs_work_or_fail_clearly(bad_inputs, write_image, tmp_path, capsys, name):
    style = write_image("s.png", 48, 48)
    out = tmp_path / "o.png"
    code = main(["gatys", str(bad_inputs / name), str(style), "-o", str(out), *FAST])
    err = capsys.readouterr().err
    if name == "sliver-4000x6.png":  # 4000x6 at --edge 48 is 48x1: too thin for the encoder
        assert code == 2 and "needs at least 16 px on each side" in err and not out.exists()
        return
    assert code == 0, err
    from impasto.image.io import load_image

    result = load_image(out)
    if name == "half-transparent.png":
        assert result.alpha is not None
    if name == "exif-rotated-90.jpg":
        src = load_image(bad_inputs / name).image
        assert (result.image.shape[-2] > result.image.shape[-1]) == (src.shape[-2] > src.shape[-1])
    if name == "animated.gif":
        assert "first" in err


def test_missing_file(tmp_path, write_image, capsys):
    code = main(["gatys", str(tmp_path / "nope.jpg"), str(write_image("s.png")), "-o", str(tmp_path / "o.png"), *FAST])
    err = capsys.readouterr().err
    assert code == 2 and "nope.jpg" in err and "no such file" in err


def test_unwritable_output_fails_before_any_work(pair, tmp_path, capsys):
    content, style = pair
    code = main(["gatys", str(content), str(style), "-o", str(tmp_path / "missing" / "o.png"), *FAST])
    err = capsys.readouterr().err
    assert code == 2 and "does not exist" in err and "missing" in err


@pytest.mark.parametrize(
    "flags,message",
    [
        (["--style-weight", "-1"], "--style-weight must be >= 0"),
        (["-n", "-3"], "--iterations must be >= 0"),
        (["--device", "tpu"], "unknown device 'tpu'"),
        (["--style-layers", "relu9_1"], "unknown layer 'relu9_1'"),
        (["--content-layers", "relu4_2:abc"], "is not a number"),
        (["--encoder", "vgg91"], "did you mean 'vgg19'"),
        (["--weights", "vgg19.caffee"], "vgg19.caffee"),
        (["--scales", "512,256"], "--scales"),
        (["--init", "nofile.png"], "nofile.png"),
    ],
)
def test_bad_options_get_one_line_and_exit_2(pair, tmp_path, capsys, flags, message):
    content, style = pair
    code = main(["gatys", str(content), str(style), "-o", str(tmp_path / "o.png"), *FAST, *flags])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "o.png").exists()


def test_corrupt_weights_file(pair, tmp_path, capsys):
    content, style = pair
    bad = tmp_path / "weights.pth"
    bad.write_bytes(b"not a checkpoint")
    code = main(["gatys", str(content), str(style), "-o", str(tmp_path / "o.png"), *FAST[:2], "--weights", str(bad), *FAST[4:]])
    err = capsys.readouterr().err
    assert code == 2 and "weights.pth" in err and len(err.strip().splitlines()) == 1


def test_argparse_errors_are_one_line(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["gatys", "a.jpg", "b.jpg", "--optimizer", "sgd"])
    assert exc.value.code == 2
    assert "invalid choice: 'sgd'" in capsys.readouterr().err


def test_help_teaches(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["gatys", "--help"])
    out = capsys.readouterr().out
    assert exc.value.code == 0
    for text in ("--style-layers", "did you mean", "examples:", "--preserve-colors", "--resume", "(default: 300)"):
        assert text in out


def test_top_level_help_lists_commands(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for cmd in ("gatys", "reconstruct", "sweep", "batch", "weights"):
        assert cmd in out


def test_16_bit_output(pair, tmp_path):
    content, style = pair
    out = tmp_path / "o16.png"
    assert main(["gatys", str(content), str(style), "-o", str(out), *FAST, "--bit-depth", "16"]) == 0
    from PIL import Image

    with Image.open(out) as im:
        assert im.mode in ("I;16", "RGB;16", "I", "RGB") or "16" in str(im.info) or im.mode.startswith("I")


def test_debug_shows_the_traceback(tmp_path, write_image):
    with pytest.raises(Exception):
        main(["--debug", "gatys", str(tmp_path / "nope.jpg"), str(write_image("s.png")), *FAST])




@pytest.mark.parametrize(
    "flags, bound",
    [
        ([], False),
        (["--edge", "1024"], False),
        (["--edge", "2048"], True),
        (["--scales", "256,512,2048"], True),
        (["--max-memory", "8G"], True),
        (["--max-memory", "auto"], False),
        (["--tile", "256"], True),
    ],
)
def test_allocator_tuning_is_skipped_when_memory_matters(flags, bound):
    from impasto.cli.gatys import _memory_bound
    from impasto.cli.main import build_parser

    args = build_parser().parse_args(["gatys", "c.jpg", "s.jpg", *flags])
    assert _memory_bound(args) is bound


def test_resume_from_a_snapshot_when_the_state_file_is_gone(pair, tmp_path, monkeypatch, capsys):
    content, style = pair
    out = tmp_path / "o.png"
    _interrupt_after(monkeypatch, 7)
    assert main(["gatys", str(content), str(style), "-o", str(out), *FAST, "-n", "12", "--save-every", "3"]) == 130
    monkeypatch.undo()
    (tmp_path / "o.png.resume.pt").unlink()
    capsys.readouterr()
    assert main(["gatys", "--resume", str(tmp_path / "o.png.json")]) == 0
    assert "no saved optimiser state; continuing from snapshot" in capsys.readouterr().err
    m = json.loads((tmp_path / "o.png.json").read_text())
    assert m["iterations_run"] == 12 and m["levels"][-1]["iterations"] == 12


@pytest.mark.parametrize(("flags", "chosen"), [([], "tuned"), (["--max-memory", "8G"], "lean")])
def test_the_command_picks_the_allocator_by_memory_boundness(pair, tmp_path, monkeypatch, flags, chosen):
    """Small runs get the fast allocator, memory-bound ones the lean one (recorded, not applied:
    the setting is process-wide)."""
    import impasto.cli.runtime as runtime

    applied = []
    monkeypatch.setattr(runtime, "tune_allocator", lambda: applied.append("tuned"))
    monkeypatch.setattr(runtime, "lean_allocator", lambda: applied.append("lean"))
    content, style = pair
    assert main(["gatys", str(content), str(style), "-o", str(tmp_path / "o.png"), *FAST, "-n", "2", *flags]) == 0
    assert applied == [chosen]

def test_lean_allocator_hands_freed_blocks_back():
    """Memory-bound gatys runs use lean_allocator: freed tensors of a few MB go back to the system
    even with a small live tensor allocated after them. Both children start with glibc pinned where
    its moving threshold can end (32 MB) and never trimming, so without lean_allocator the blocks
    stay in the heap for sure (+65-85 MB); glibc's own defaults keep +67 MB on one machine and
    +18 MB on another, too variable to show that the test can fail. Process-wide, so checked in
    child processes."""
    import subprocess
    import sys

    code = """
import sys, torch
from impasto.allocator import lean_allocator
if sys.argv[1] == "lean" and not lean_allocator():
    sys.exit(3)
def rss():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) / 1024
base, survivors = rss(), []
for _ in range(4):
    blocks = [torch.ones(2**19) for _ in range(32)]  # 32 tensors of 2 MB
    survivors.append(torch.ones(2**12))  # a small tensor allocated after them, still alive
    del blocks
print(rss() - base)
"""
    if not sys.platform.startswith("linux"):
        pytest.skip("glibc's mallopt: Linux only")
    grown = {}
    retaining = {"MALLOC_MMAP_THRESHOLD_": str(32 << 20), "MALLOC_TRIM_THRESHOLD_": str(1 << 32)}
    for mode in ("kept", "lean"):
        env = {k: v for k, v in os.environ.items() if k != "IMPASTO_ALLOCATOR"}  # the suite's own setting off
        env.update(retaining)
        result = subprocess.run([sys.executable, "-c", code, mode], capture_output=True, text=True, env=env)
        assert result.returncode == 0, result.stderr
        grown[mode] = float(result.stdout)
    assert grown["lean"] < 16, grown
    assert grown["kept"] > grown["lean"] + 32, grown  # the test can tell the two apart
