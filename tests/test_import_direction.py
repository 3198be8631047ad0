"""Architecture guard: lower layers never import higher ones; importing impasto has no side effects."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "src" / "impasto"

# layer rank: a module may import only modules of the same or a lower rank
RANK = {
    "_version": 0, "errors": 0, "progress": 0, "atomic": 0, "config": 0, "provenance": 0, "precision": 0, "allocator": 0,
    "image": 1, "weights": 1,
    "features": 2, "losses": 2,
    "nets": 3, "optim": 3, "data": 3,
    "methods": 4, "video": 4,
    "api": 5,
    "cli": 6, "service": 6,
}


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    rel = path.relative_to(PKG.parent).with_suffix("")
    pkg_parts = list(rel.parts[:-1]) if rel.name != "__init__" else list(rel.parts[:-1])
    if rel.name == "__init__":
        pkg_parts = list(rel.parts[:-1])
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.startswith("impasto")]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg_parts[: len(pkg_parts) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
                if node.module is None:
                    found += [mod + "." + a.name for a in node.names]
                else:
                    found.append(mod)
            elif node.module and node.module.startswith("impasto"):
                found.append(node.module)
    return found


def test_lower_layers_never_import_higher_ones():
    violations = []
    for path in PKG.rglob("*.py"):
        mod = ".".join(path.relative_to(PKG.parent).with_suffix("").parts)
        own = _layer(mod)
        if own not in RANK:
            continue
        for imported in _imports(path):
            other = _layer(imported)
            if other in RANK and RANK[other] > RANK[own]:
                violations.append(f"{mod} imports {imported}")
    assert not violations, "\n".join(violations)


def test_every_top_level_module_has_a_rank():
    names = {p.stem if p.is_file() else p.name for p in PKG.iterdir() if (p.suffix == ".py" or p.is_dir()) and not p.name.startswith("__")}
    names -= {"py"}
    assert names <= set(RANK) | {"static"}, names - set(RANK)


def test_import_has_no_side_effects(tmp_path):
    code = "import impasto, sys, os; print(sorted(m for m in sys.modules if m.startswith('impasto'))); print(os.listdir('.'))"
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert out.stdout.splitlines()[1] == "[]"  # nothing written to the cwd
    assert "torch" not in out.stdout.splitlines()[0]
    assert out.stderr == ""


#: what the shells (the CLI and the web service) may import from the package: the public API
#: and the small modules it hands out; everything else goes through impasto.api
SHELL_ALLOWED = {"api", "config", "errors", "progress", "_version", "cli", "service"}


def test_shells_import_only_the_api():
    violations = []
    for shell in ("cli", "service"):
        for path in (PKG / shell).rglob("*.py"):
            mod = ".".join(path.relative_to(PKG.parent).with_suffix("").parts)
            for imported in _imports(path):
                layer = _layer(imported)
                if imported != "impasto" and layer not in SHELL_ALLOWED:
                    violations.append(f"{mod} imports {imported}")
    assert not violations, "the shells must go through impasto.api:\n" + "\n".join(violations)


def test_the_shell_rule_catches_a_deep_import(tmp_path):
    """The rule above is live: a shell module importing below the API is reported."""
    bad = tmp_path / "impasto" / "cli" / "bad.py"
    bad.parent.mkdir(parents=True)
    bad.write_text("from ..methods.gatys import GatysConfig\nfrom .. import api\n")
    found = [_layer(m) for m in _imports_at(bad, tmp_path)]
    assert "methods" in found and "api" in found


def _imports_at(path: Path, root: Path) -> list[str]:
    global PKG
    saved = PKG
    PKG = root / "impasto"
    try:
        return _imports(path)
    finally:
        PKG = saved


def test_every_module_imports_without_posix_only_modules(tmp_path):
    """Nothing platform-specific happens at import: every module imports with the POSIX-only
    standard modules (resource, fcntl, termios, pwd, grp) missing, as on Windows."""
    code = (
        "import sys, pkgutil, importlib\n"
        "for name in ('resource', 'fcntl', 'termios', 'pwd', 'grp'):\n"
        "    sys.modules[name] = None\n"
        "import impasto\n"
        "names = [m.name for m in pkgutil.walk_packages(impasto.__path__, 'impasto.')]\n"
        "for name in names:\n"
        "    importlib.import_module(name)\n"
        "print(len(names))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout) > 50
