"""The time-to-quality benchmark's --quality-ladder parser (benchmarks/bench_gatys.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

_path = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_gatys.py"
_spec = importlib.util.spec_from_file_location("bench_gatys", _path)
assert _spec is not None and _spec.loader is not None
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)


def test_default_ladder_is_two_fifths_and_one_fifth() -> None:
    assert bench.parse_ladder("", 512, 500) == [[128, 200], [256, 100]]


def test_two_counts_mean_quarter_and_half_edge() -> None:
    assert bench.parse_ladder("100,50", 512, 500) == [[128, 100], [256, 50]]


def test_edge_iteration_pairs_give_any_number_of_levels() -> None:
    assert bench.parse_ladder("128:200,256:100,384:60", 512, 500) == [[128, 200], [256, 100], [384, 60]]


@pytest.mark.parametrize(
    "text, message",
    [
        ("1,2,3", "expected 'A,B' or EDGE:ITERS pairs, got '1,2,3'"),
        ("a:b", "expected 'A,B' or EDGE:ITERS pairs, got 'a:b'"),
        ("512:3", "coarse edges must rise and stay below the final 512 px, got '512:3'"),
        ("256:1,128:2", "coarse edges must rise and stay below the final 512 px, got '256:1,128:2'"),
        ("128:1,128:2", "coarse edges must rise and stay below the final 512 px, got '128:1,128:2'"),
    ],
)
def test_bad_ladders_are_refused(text: str, message: str) -> None:
    with pytest.raises(SystemExit) as err:
        bench.parse_ladder(text, 512, 500)
    assert str(err.value) == f"--quality-ladder: {message}"
