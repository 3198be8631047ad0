"""Shared fixtures: the repo's data folders, an isolated weights cache, tiny encoders; and
``require``, the one way a test may depend on something optional (it skips locally, fails in CI).

Use it instead of ``pytest.importorskip``/``skipif`` for anything CI installs (the test extras,
Debian's chromium)::

    from tests.conftest import require, require_module, require_program

    fastapi = require_module("fastapi")                    # module level or inside a test
    BROWSER = require_program("chromium", "chromium-browser")
    require(has_thing(), "no thing installed")
"""

from __future__ import annotations

import importlib
import os
import shutil
from pathlib import Path
from types import ModuleType
from typing import NoReturn

import pytest
import torch

# precision "auto" follows the CPU (bfloat16 where it has AVX512-BF16/AMX): the suite runs float32
# on every machine, and tests/test_precision.py covers bfloat16 and the auto policy explicitly
os.environ["IMPASTO_CPU_BF16"] = "0"
# commands run in-process keep this process's glibc allocator as it is (impasto.allocator)
os.environ["IMPASTO_ALLOCATOR"] = "system"

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"


def ci_strict() -> bool:
    """True under ``CI=true`` (or 1/yes): there a missing dependency is a failure, not a skip."""
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def _missing(why: str) -> NoReturn:
    if ci_strict():
        pytest.fail(f"{why}; CI=true, so this fails instead of skipping: CI must install it (see .ci/run)", pytrace=False)
    pytest.skip(why, allow_module_level=True)


def require(condition: object, why: str) -> None:
    """Skip the calling test (or module) unless ``condition`` holds; fail instead under CI=true,
    where every dependency the suite uses is installed and a skip would hide an untested path."""
    if not condition:
        _missing(why)


def require_module(name: str) -> ModuleType:
    """``pytest.importorskip`` that fails under CI=true; returns the module."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        _missing(f"Python module {name!r} is not installed ({exc})")


def require_program(*names: str) -> str:
    """The path of the first of ``names`` found on PATH; skip (fail under CI=true) if none is."""
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    _missing(f"none of {', '.join(names)} is on PATH")


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets an empty weights cache: nothing is read from or written to the user's."""
    home = tmp_path_factory.mktemp("impasto_home")
    monkeypatch.setenv("IMPASTO_HOME", str(home))
    return home


@pytest.fixture(autouse=True)
def _threads() -> None:
    torch.set_num_threads(2)


@pytest.fixture(scope="session")
def bad_inputs() -> Path:
    """The awkward and hostile files (copied from shared/bad-inputs with their README)."""
    return DATA / "bad-inputs"


@pytest.fixture(scope="session")
def examples() -> Path:
    return ROOT / "examples"


@pytest.fixture(scope="session")
def tiny_encoder():
    """tiny_vgg with deterministic random weights, all classic layers."""
    from impasto.features import build_encoder

    layers = ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu4_2", "relu5_1"]
    return build_encoder("tiny_vgg", weights="random", layers=layers)


def make_image(h: int = 48, w: int = 64, seed: int = 0, smooth: bool = True) -> torch.Tensor:
    """A deterministic test image 1x3xHxW in [0, 1] with some structure."""
    g = torch.Generator().manual_seed(seed)
    img = torch.rand(1, 3, max(1, h // 8), max(1, w // 8), generator=g)
    img = torch.nn.functional.interpolate(img, size=(h, w), mode="bilinear", align_corners=False) if smooth else torch.rand(1, 3, h, w, generator=g)
    return (img + 0.1 * torch.rand(1, 3, h, w, generator=g)).clamp(0, 1)


@pytest.fixture
def image_factory():
    return make_image


@pytest.fixture
def write_image(tmp_path: Path):
    """Write a test image to a PNG/JPEG file and return its path."""
    from PIL import Image
    import numpy as np

    def write(name: str, h: int = 48, w: int = 64, seed: int = 0, mode: str = "RGB") -> Path:
        arr = (make_image(h, w, seed)[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        im = Image.fromarray(arr, "RGB").convert(mode)
        path = tmp_path / name
        im.save(path)
        return path

    return write
