"""The layers of ``hw``: planning (front) and graph (ir) code imports no Amaranth; the
dependency direction flows -> mapping -> (hw, sim, sw) -> golden holds."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PURE_LAYERS = ("hw.front", "hw.ir", "hw.cost")


def _modules(package: str) -> list[str]:
    path = ROOT.joinpath(*package.split("."))
    if path.with_suffix(".py").exists():
        return [package]
    return sorted(f"{package}.{p.stem}" for p in path.glob("*.py") if p.stem != "__init__")


@pytest.mark.parametrize("layer", PURE_LAYERS)
def test_pure_layers_import_no_amaranth(layer):
    mods = _modules(layer)
    assert mods, f"{layer} has no modules"
    code = ("import importlib, sys\n"
            f"for m in {mods!r}: importlib.import_module(m)\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('amaranth', 'torch'))\n"
            "print(','.join(bad))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout.strip()
    assert out == "", f"{layer} pulls in {out}"


def _imports(path: Path) -> set[str]:
    """Top-level packages of ours that ``path`` imports (absolute imports only)."""
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found & {"flows", "mapping", "hw", "sim", "sw", "golden"}


ALLOWED = {
    "golden": set(),
    "hw": {"golden"},
    "sim": {"hw", "golden"},
    "sw": {"golden"},
    "mapping": {"hw", "sim", "sw", "golden"},
    "flows": {"mapping", "hw", "sim", "sw", "golden"},
}


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_dependencies_point_one_way(package):
    bad = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        extra = _imports(path) - ALLOWED[package] - {package}
        if extra:
            bad[str(path.relative_to(ROOT))] = sorted(extra)
    assert bad == {}
