"""How ``sw`` imports: the cost model without torch or triton, kernels interpreted without a GPU
(TRITON_INTERPRET set before triton is imported). Each check runs in a fresh interpreter."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
KERNEL_MODULES = ("sw.coat", "sw.duo_attention", "sw.duo_attention_kernels", "sw.int8_gemm",
                  "sw.linear_attention", "sw.svdquant", "sw.svdquant_kernels")
NO_GPU = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU default")


def _run(code: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          env=env)


def _env_without_interpret() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}


@pytest.mark.parametrize("module", ["sw", "sw.roofline"])
def test_cost_model_imports_neither_torch_nor_triton(module):
    code = (f"import sys, {module}\n"
            "from sw.roofline import DEVICES, KernelCost, sequence_time, svdquant_costs\n"
            "assert sequence_time(svdquant_costs(64, 64, 64), DEVICES['H100']) > 0\n"
            "assert KernelCost('k', 1.0, 1.0).bound(DEVICES['H100']) == 'memory'\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'triton')))\n")
    out = _run(code, _env_without_interpret())
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def _imports(path: Path) -> list[str]:
    """Modules ``path`` imports at top level, in order (``.x`` for relative ones)."""
    names = []
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module != "__future__":
            names.append("." * node.level + (node.module or node.names[0].name))
    return names


def test_modules_importing_triton_import_the_runtime_first():
    """TRITON_INTERPRET must be set before triton is imported, whichever module comes first."""
    users = {}
    for path in sorted((ROOT / "sw").glob("*.py")):
        names = _imports(path)
        if any(n.split(".")[0] == "triton" for n in names):
            users[path.stem] = names[0]
    assert set(users) == {m.split(".")[1] for m in KERNEL_MODULES}
    assert all(first == "._runtime" for first in users.values()), users


@NO_GPU
def test_kernels_are_interpreted_without_gpu():
    code = ("import importlib, os\n"
            f"for m in {KERNEL_MODULES!r}: importlib.import_module(m)\n"
            "import sw, sw.int8_gemm\n"
            "print(os.environ['TRITON_INTERPRET'], sw.INTERPRETED,\n"
            "      type(sw.int8_gemm._int8_gemm_kernel).__name__)\n")
    out = _run(code, _env_without_interpret())
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["1", "True", "InterpretedFunction"]


@NO_GPU
def test_triton_imported_first_is_a_clear_error():
    out = _run("import triton\nimport sw.int8_gemm\n", _env_without_interpret())
    assert out.returncode != 0
    assert "triton was imported before sw could select its interpreter" in out.stderr
