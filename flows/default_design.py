"""The built-in default design and test that ``lego emit``, ``lego sim`` and ``lego demo`` use."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from golden.int_gemm import random_operands
from hw.emit import to_verilog, write_text_atomic
from hw.mac_array import MacArray, MacArraySpec
from sim.mac_array import GemmRun, simulate_gemm

__all__ = ["DEFAULT_K", "DEFAULT_SPEC", "TOP", "emit_default", "simulate_default"]

#: 4x4 int8 output-stationary MAC array, int32 accumulators, operand buffers of 64 words.
DEFAULT_SPEC = MacArraySpec(rows=4, cols=4, depth=64)
DEFAULT_K = 64
TOP = "mac_array"


@dataclass(frozen=True)
class Emitted:
    verilog: Path
    lines: int


def emit_default(out_dir: str | Path) -> Emitted:
    """Write the default design's Verilog to ``out_dir/mac_array.v`` (created if missing)."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} exists and is not a directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OSError(f"cannot create output directory {out}: {exc.strerror}") from None
    text = to_verilog(MacArray(DEFAULT_SPEC), TOP)
    try:
        path = write_text_atomic(out / f"{TOP}.v", text)
    except OSError as exc:
        raise OSError(f"cannot write to {out}: {exc.strerror}") from None
    return Emitted(path, text.count("\n"))


def simulate_default(seed: int = 0, mode: str = "bulk", waves: bool = False,
                     k: int = DEFAULT_K) -> GemmRun:
    """Random int8 operands (extremes included) through the default array, checked by golden."""
    a, b = random_operands(DEFAULT_SPEC.rows, k, DEFAULT_SPEC.cols, seed=seed)
    return simulate_gemm(DEFAULT_SPEC, a, b, mode=mode, seed=seed, waves=waves)
