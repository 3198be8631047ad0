"""The impasto.image package: cheap import, re-exports, and the lower-layer rules."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import torch

import impasto.image

PKG = Path(__file__).resolve().parents[2] / "src" / "impasto" / "image"


def test_importing_the_package_loads_neither_torch_nor_pillow(tmp_path: Path):
    code = "import sys, impasto.image; print(sorted(m for m in ('torch', 'PIL', 'numpy') if m in sys.modules))"
    src = str(PKG.parents[1])
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True, env={"PYTHONPATH": src})
    assert out.stdout.strip() == "[]" and out.stderr == ""
    assert list(tmp_path.iterdir()) == []


def test_every_exported_name_resolves():
    for name in impasto.image.__all__:
        assert getattr(impasto.image, name) is not None, name
    assert callable(impasto.image.load_image) and callable(impasto.image.run_tiled)


def test_resize_is_callable_both_as_the_package_name_and_the_module():
    from impasto.image import resize

    img = torch.rand(1, 3, 8, 8)
    assert resize(img, (4, 4)).shape == (1, 3, 4, 4)
    assert impasto.image.resize(img, (2, 2)).shape == (1, 3, 2, 2)
    assert impasto.image.resize.fit_edge((8, 16), 4) == (2, 4)
    from impasto.image.resize import resize as fn

    assert torch.equal(fn(img, (4, 4)), resize(img, (4, 4)))


def test_image_layer_never_prints_reads_the_environment_or_changes_directory():
    offenders = []
    for path in sorted(PKG.glob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("print", "input"):
                offenders.append(f"{path.name}:{node.lineno} {node.func.id}()")
            if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv", "chdir", "getcwd", "putenv"):
                offenders.append(f"{path.name}:{node.lineno} os.{node.attr}")
    assert offenders == []
