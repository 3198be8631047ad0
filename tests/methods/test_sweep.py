"""`impasto sweep` value syntax: list-valued parameters (layer sets, scale ladders) sweep one
list per value, separated by ';'; CSV, file names and contact-sheet labels keep each value whole."""

from __future__ import annotations

import csv
import dataclasses
import re

import pytest

from impasto.cli.main import main
from impasto.errors import ConfigError
from impasto.image.io import read_metadata
from impasto.methods.gatys import GatysConfig
from impasto.methods.sweep import LIST_VALUED, SWEEPABLE, _label_lines, _wrap, parse_axis, slug

TINY = ["--encoder", "tiny_vgg", "--weights", "random", "--edge", "48", "-n", "2", "-q"]


@pytest.fixture
def pair(write_image):
    return str(write_image("c.png", 48, 64)), str(write_image("s.png", 48, 48, seed=3))


@pytest.mark.parametrize(
    "text, values, noted",
    [
        ("style_weight=1e2,1e3", ("1e2", "1e3"), False),
        ("style_weight=1e2;1e3", ("1e2", "1e3"), False),
        ("init=a,b.png;noise", ("a,b.png", "noise"), False),  # ';' given: commas stay inside values
        ("content_layers=relu4_2;relu3_1,relu4_2", ("relu4_2", "relu3_1,relu4_2"), False),
        ("content-layers = relu4_2 ; relu3_1, relu4_2 ", ("relu4_2", "relu3_1, relu4_2"), False),
        ("style_layers=relu1_1,relu2_1|relu1_1", ("relu1_1,relu2_1", "relu1_1"), False),  # '|' alias
        ("scales=128,256;256", ("128,256", "256"), False),
        ("content_layers=relu4_2,relu3_1", ("relu4_2,relu3_1",), True),  # one list, with a note
        ("content_layers=relu4_2", ("relu4_2",), False),
    ],
)
def test_parse_axis_values(text, values, noted):
    axis = parse_axis(text)
    assert axis.values == values
    assert bool(axis.note) == noted
    if noted:
        assert "\n" not in axis.note and '"content_layers=relu4_2;relu3_1"' in axis.note


@pytest.mark.parametrize("text, fragment", [
    ("content_layers=relu4_2;;relu3_1", "empty value"),
    ("content_layers=relu4_2;", "empty value"),
    ("style_weight=1,,2", "empty value"),
    ("style_weight=1;1", "given twice"),
])
def test_parse_axis_rejects_bad_spellings(text, fragment):
    with pytest.raises(ConfigError, match=fragment):
        parse_axis(text)


def test_list_valued_parameters_are_the_comma_list_fields():
    """A GatysConfig field whose help shows a comma list (NAME,NAME / 256,512) must be in LIST_VALUED."""
    listy = {f.name for f in dataclasses.fields(GatysConfig) if re.search(r"\w,\w", f.metadata.get("help", "")) and f.name in SWEEPABLE}
    assert listy == set(LIST_VALUED)


def test_layer_list_sweep_makes_one_run_per_value(tmp_path, pair, capsys):
    out = tmp_path / "o"
    assert main(["sweep", *pair, "--param", "content_layers=relu4_2;relu3_1,relu4_2", "-o", str(out), *TINY]) == 0
    assert "note:" not in capsys.readouterr().err
    with open(out / "results.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["content_layers"] for r in rows] == ["relu4_2", "relu3_1,relu4_2"]  # each value whole, one row per run
    assert len({r["file"] for r in rows}) == 2 and len(list(out.glob("*.png"))) == 3  # 2 runs + sheet
    used = [read_metadata(out / r["file"]) for r in rows]
    assert [list(m["encoder"]["content_layers"]) for m in used] == [["relu4_2"], ["relu3_1", "relu4_2"]]
    assert [m["config"]["content_layers"] for m in used] == ["relu4_2", "relu3_1,relu4_2"]


def test_commas_only_on_a_list_parameter_is_one_run_and_says_so(tmp_path, pair, capsys):
    out = tmp_path / "o"
    assert main(["sweep", *pair, "--param", "content_layers=relu4_2,relu3_1", "-o", str(out), *TINY]) == 0
    notes = [line for line in capsys.readouterr().err.splitlines() if line.startswith("note:")]
    assert len(notes) == 1 and '"content_layers=relu4_2;relu3_1"' in notes[0]
    with open(out / "results.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["content_layers"] for r in rows] == ["relu4_2,relu3_1"]
    assert list(read_metadata(out / rows[0]["file"])["encoder"]["content_layers"]) == ["relu4_2", "relu3_1"]


@pytest.mark.parametrize("param, fragment", [
    ("content_layers=relu4_2;;relu3_1", "empty value"),
    ("content_layers=relu4_2;relu3_l", "--param content_layers=relu3_l: unknown layer 'relu3_l'"),
    ("style_layers=relu1_1:x;relu2_1", "--param style_layers=relu1_1:x: layer 'relu1_1:x': weight 'x'"),
    ("scales=32,x;48", "--param scales=32,x: --scales"),
    ("style_weight=1,x", "--param style_weight=x: --style-weight: expected a number"),
])
def test_bad_values_fail_in_one_line_before_any_run(tmp_path, pair, capsys, param, fragment):
    out = tmp_path / "o"
    assert main(["sweep", *pair, "--param", param, "-o", str(out), *TINY]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and fragment in err and "Traceback" not in err
    assert not out.exists() or not any(out.iterdir())  # nothing ran


def test_help_explains_list_values(capsys):
    with pytest.raises(SystemExit):
        main(["sweep", "--help"])
    text = capsys.readouterr().out
    assert '"content_layers=relu4_2;relu3_1,relu4_2"' in text and "ONE value" in text


def test_sheet_labels_show_each_value_whole():
    long = "relu1_1:0.2,relu2_1:0.2,relu3_1,relu4_1,relu5_1"
    parts = _label_lines(f"content_layers=relu3_1,relu4_2, style_layers={long}")  # as api.sweep joins them
    assert parts == ["content_layers=relu3_1,relu4_2", f"style_layers={long}"]
    measure = lambda s: 6 * len(s)  # noqa: E731
    lines = _wrap(parts[1], 120, measure)
    assert len(lines) > 1 and "".join(lines) == parts[1] and all(measure(x) <= 120 for x in lines)


def test_file_names_stay_distinct_for_long_or_lossy_values():
    base = ",".join(f"relu{i}_1" for i in range(1, 6)) * 4  # > 120 characters
    names = {slug({"style_layers": base + tail}) for tail in (",relu1_1", ",relu2_1")}
    names |= {slug({"init": "a b.png"}), slug({"init": "a-b.png"}), slug({"content_layers": "relu4_2"})}
    assert len(names) == 5 and all(len(n) <= 120 and re.fullmatch(r"[A-Za-z0-9._+-]+", n) for n in names)
    assert slug({"content_layers": "relu3_1,relu4_2"}) == "content_layers-relu3_1+relu4_2"
