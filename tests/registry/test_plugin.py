"""Third-party methods: the example package in examples/plugin, installed for real (pip, entry
point group ``impasto.methods``), adds a method to the API and a command to the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, require_module

PLUGIN = ROOT / "examples" / "plugin"


@pytest.fixture(scope="module")
def plugin_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """examples/plugin installed into a folder of its own (not into the test environment)."""
    require_module("setuptools")  # the plugin's build backend (the test extra installs it)
    target = tmp_path_factory.mktemp("plugin_site")
    build = tmp_path_factory.mktemp("plugin_build")
    src = build / "plugin"
    import shutil

    shutil.copytree(PLUGIN, src)  # build in a copy: nothing is written into the repository
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index",
         "--disable-pip-version-check", "--target", str(target), str(src)],
        capture_output=True, text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert list(target.glob("impasto_palette-*.dist-info/entry_points.txt"))
    return target


def _python(code: str, plugin: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(plugin), str(ROOT)]))
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd, env=env, timeout=300)


def test_installed_plugin_adds_a_method_and_a_command(plugin_path, tmp_path):
    content = ROOT / "examples" / "content" / "tubingen.jpg"
    style = ROOT / "examples" / "style" / "starry_night.jpg"
    code = f"""
import impasto, json
from impasto.cli.main import main
print(json.dumps(impasto.list_methods()))
print(json.dumps(impasto.method_schema("palette")))
r = impasto.run("palette", content={str(content)!r}, style={str(style)!r}, colours=4)
print(json.dumps([list(r.image.shape), len(r.manifest["palette"])]))
raise SystemExit(main(["palette", {str(content)!r}, {str(style)!r}, "-o", "p.png", "--colours", "5", "-n", "4", "-q"]))
"""
    proc = _python(code, plugin_path, tmp_path)
    assert proc.returncode == 0, proc.stderr
    names, schema, shape = (json.loads(line) for line in proc.stdout.splitlines()[:3])
    assert names[:3] == ["gatys", "reconstruct", "apply"] and "palette" in names
    assert schema["properties"]["colours"]["default"] == 8 and [i["name"] for i in schema["x-inputs"]] == ["content", "style"]
    assert shape[0][1] == 3 and shape[1] == 4
    manifest = json.loads((tmp_path / "p.png.json").read_text())
    assert manifest["method"] == "palette" and manifest["config"]["colours"] == 5 and len(manifest["palette"]) == 5

    helptext = _python("from impasto.cli.main import main; main(['palette', '--help'])", plugin_path, tmp_path).stdout
    assert "--colours N" in helptext and "how many colours to take from the painting" in helptext and "(default: 8)" in helptext
    bad = _python(f"from impasto.cli.main import main; raise SystemExit(main(['palette', {str(content)!r}, {str(style)!r}, '--colours', '99']))", plugin_path, tmp_path)
    assert bad.returncode == 2 and bad.stderr.strip() == "impasto: error: --colours must be in 2..64, got 99"


def test_without_the_plugin_the_method_does_not_exist(tmp_path):
    proc = _python("import impasto; print('palette' in impasto.list_methods())", Path(tmp_path), tmp_path)
    assert proc.stdout.strip() == "False"
