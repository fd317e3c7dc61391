"""The generated accelerator's RTL as an engine of ``lego run``: its Verilog (emitted once per
architecture and generator, then cached), the fast Verilator build or cocotb, and a program
run over a DRAM image.

Engines: ``fast`` (:mod:`sim.accel_fast`, a C++ harness: long runs) and ``cocotb``
(:mod:`sim.accel_cocotb`: Python per cycle, small runs). Both use the architecture's DRAM
latency and bandwidth (:mod:`sim.dram_model`).
"""

from __future__ import annotations

import hashlib
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from hw.front.accel_params import RTL_UNIT_MODES
from hw.front.arch import ArchSpec
from hw.front.isa import UNIT_MODES, UNIT_NAMES, Instruction, ProgramError, check_program, encode
from hw.rtl.emit import write_text_atomic
from sim.toolchain import cache_dir

__all__ = ["RTL_ENGINES", "RtlRun", "accelerator_source", "design_key", "emit_accelerator",
           "rtl_lacks", "run_program"]

RTL_ENGINES = ("fast", "cocotb")
#: the generator's sources: a change to any Python file under these is a new accelerator (the
#: RTL, the unit graphs, the specs and the golden tables they are built from)
_GENERATOR = ("hw", "golden")
_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class RtlRun:
    """A program run on the accelerator's RTL: its cycles and whether its final DRAM is the
    reference machine's."""

    cycles: int
    dram: bytes
    cycles_per_s: float
    build_s: float


def design_key(arch: ArchSpec) -> str:
    """20 hex digits naming ``arch``'s generated accelerator: its spec, Amaranth's version
    and every generator source (a cache of anything derived from the RTL is keyed by it)."""
    import amaranth

    h = hashlib.sha256(repr(arch).encode())
    h.update(amaranth.__version__.encode())
    for top in _GENERATOR:
        for path in sorted((_ROOT / top).rglob("*.py")):
            h.update(path.relative_to(_ROOT).as_posix().encode())
            h.update(path.read_bytes())
    return h.hexdigest()[:20]


def accelerator_source(arch: ArchSpec) -> tuple[str, str]:
    """(Verilog, top module name) of ``arch``'s accelerator, from the cache when this
    architecture and generator were emitted before."""
    from hw.rtl.accel import accelerator_verilog, top_name

    top = top_name(arch)
    path = cache_dir() / "accel-verilog" / f"{top}-{design_key(arch)}.v"
    if path.is_file():
        return path.read_text(), top
    text = accelerator_verilog(arch)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, text)
    return text, top


def emit_accelerator(arch: ArchSpec, out: str | Path) -> dict:
    """Write ``arch``'s accelerator to ``out/<top>.v`` (atomically; ``out`` is created) and
    say what was written."""
    from hw.rtl.accel import accelerator_verilog, top_name

    t0 = time.perf_counter()
    text = accelerator_verilog(arch)
    seconds = time.perf_counter() - t0
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    path = write_text_atomic(out / f"{top_name(arch)}.v", text)
    return {"arch": arch.name, "top": top_name(arch), "verilog": str(path),
            "lines": text.count("\n"), "emit_s": round(seconds, 2)}


def _progress(expected: int) -> Callable[[int], None]:
    start = time.perf_counter()

    def show(cycles: int) -> None:
        rate = cycles / max(time.perf_counter() - start, 1e-9)
        print(f"lego run: {cycles:,} of ~{expected:,} cycles ({rate / 1e6:.2f}M cycles/s)",
              file=sys.stderr, flush=True)

    return show


def rtl_lacks(program: Sequence[Instruction]) -> str | None:
    """Why the generated accelerator cannot run ``program`` (its first instruction the RTL
    does not execute yet: unit commands outside
    :data:`~hw.front.accel_params.RTL_UNIT_MODES`; the reference machine runs them), or
    None. Every move executes (``mvin col=`` and ``acc=1`` too, plain and transposed)."""
    for n, ins in enumerate(program, 1):
        if ins.op != "unit":
            continue
        unit = UNIT_NAMES[ins["unit"]]
        mode = UNIT_MODES[unit][ins["mode"]]
        if mode not in RTL_UNIT_MODES.get(unit, ()):
            return (f"instruction {n} ({ins.op}): the generated accelerator does not execute "
                    f"{unit} {mode} commands yet")
    return None


def run_program(arch: ArchSpec, program: Sequence[Instruction], dram: bytes, *, engine: str,
                expected_cycles: int) -> RtlRun:
    """Run ``program`` on ``arch``'s accelerator (``engine``: ``fast`` or ``cocotb``) over a
    DRAM holding ``dram``. ``expected_cycles`` (the model's) sizes the run's limit (a hung
    run stops at twice it) and the progress lines a long fast run prints to stderr."""
    from sim.accel_cocotb import run_accel_cocotb
    from sim.accel_fast import build_accel_fast, run_accel_fast

    if engine not in RTL_ENGINES:
        raise ValueError(f"unknown RTL engine {engine!r} (engines: {', '.join(RTL_ENGINES)})")
    check_program(list(program), arch)      # the hardware trusts its programs
    if reason := rtl_lacks(program):
        raise ProgramError(f"{reason}; run this program with --engine ref")
    verilog, top = accelerator_source(arch)
    words = [encode(i) for i in program]
    limit = 2 * expected_cycles + 10_000
    latency = arch.dram.latency_cycles
    if engine == "cocotb":
        t0 = time.perf_counter()
        run = run_accel_cocotb(verilog, top, words, dram, latency=latency, max_cycles=limit)
        return RtlRun(run.cycles, run.dram, run.cycles_per_s, time.perf_counter() - t0)
    build = build_accel_fast(verilog, top, profile_guided=False)     # PGO measured slower
    run = run_accel_fast(build, words, dram, latency=latency, max_cycles=limit,
                         progress=_progress(expected_cycles))
    return RtlRun(run.cycles, run.dram, run.cycles_per_s, build.seconds)
