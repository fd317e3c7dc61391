"""Cached Verilator builds and cocotb test runs (cocotb 2.1's Python runner).

A build is keyed by a hash of the Verilog text, the top name, the build flags and the tool
versions: the same design twice does not rebuild. Builds live under
``cache_dir()/verilator/<top>-<key>``; a file lock makes concurrent pytest-xdist workers wait for
one build instead of racing, and a ``complete`` marker written last means a crashed build is
redone rather than reused. Each test run gets a fresh directory of its own.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import shutil
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .errors import BuildError, SimulationError
from .toolchain import cache_dir, ensure_on_path, verilator_version

__all__ = ["BUILD_MARKER", "VERILATOR_FLAGS", "Build", "TestRun", "build", "build_errors",
           "run_test"]

#: Amaranth's Verilog trips width warnings that are harmless by construction (toolchain.md).
VERILATOR_FLAGS: tuple[str, ...] = ("-Wno-WIDTHEXPAND", "-Wno-WIDTHTRUNC", "-O3")

BUILD_MARKER = "complete"


@dataclass(frozen=True)
class Build:
    """A finished Verilator build of one top module."""

    directory: Path
    top: str
    key: str
    waves: bool
    cached: bool           #: True when an earlier build was reused
    seconds: float         #: wall time spent here (near 0 when cached)


@dataclass(frozen=True)
class TestRun:
    """The outcome of a cocotb run: the bench's JSON output and where the run lived."""

    output: dict
    directory: Path | None           #: kept only when waves were requested
    waves: Path | None = None
    wall_s: float = 0.0
    log_tail: str = field(default="", repr=False)


def _key(verilog: str, top: str, waves: bool, flags: Sequence[str]) -> str:
    """The build's cache key. It names cocotb's library folder too: the simulator binary
    loads ``libcocotbvpi_verilator.so`` from there (its RUNPATH), so a build made from another
    environment sharing the cache (another venv, a CI checkout) would not start here."""
    import cocotb
    from cocotb_tools.config import libs_dir

    h = hashlib.sha256()
    for part in (verilog, top, str(waves), " ".join(flags), verilator_version(),
                 cocotb.__version__, str(Path(libs_dir).resolve())):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()[:20]


def build(
    verilog: str,
    top: str,
    *,
    waves: bool = False,
    extra_flags: Sequence[str] = (),
    cache_root: Path | None = None,
) -> Build:
    """Build ``verilog`` (top module ``top``) for cocotb, reusing a cached build when possible."""
    ensure_on_path()
    flags = (*VERILATOR_FLAGS, *extra_flags)
    key = _key(verilog, top, waves, flags)
    root = (cache_root or cache_dir()) / "verilator"
    root.mkdir(parents=True, exist_ok=True)
    directory = root / f"{top}-{key}"
    t0 = time.perf_counter()
    with open(root / f"{top}-{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (directory / BUILD_MARKER).is_file():
            return Build(directory, top, key, waves, True, time.perf_counter() - t0)
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir()
        source = directory / f"{top}.v"
        source.write_text(verilog)
        log = directory / "build.log"
        try:
            _runner().build(sources=[source], hdl_toplevel=top, build_dir=directory,
                            build_args=list(flags), waves=waves, log_file=log)
        except (RuntimeError, SystemExit) as exc:
            message = build_errors(log.read_text() if log.is_file() else str(exc))
            shutil.rmtree(directory, ignore_errors=True)
            raise BuildError(f"Verilator failed to build {top}:\n{message}") from None
        (directory / BUILD_MARKER).write_text(json.dumps({"top": top, "flags": flags}))
    return Build(directory, top, key, waves, False, time.perf_counter() - t0)


def run_test(
    built: Build,
    test_module: str,
    params: Mapping,
    *,
    seed: int = 0,
    waves: bool = False,
    timeout_s: float | None = None,
) -> TestRun:
    """Run cocotb ``test_module`` on ``built``; ``params`` reach the bench as JSON.

    The bench reads ``$LEGO_BENCH_IN`` and writes its results to ``$LEGO_BENCH_OUT``. The run
    directory is removed afterwards unless waves were requested (``waves`` needs a waves build).
    """
    if waves and not built.waves:
        raise ValueError("waves=True needs a build made with waves=True")
    ensure_on_path()
    run_dir = Path(tempfile.mkdtemp(prefix=f"lego-sim-{built.top}-"))
    (run_dir / "in.json").write_text(json.dumps(params))
    env = {"LEGO_BENCH_IN": str(run_dir / "in.json"), "LEGO_BENCH_OUT": str(run_dir / "out.json")}
    if timeout_s is not None:
        env["LEGO_BENCH_TIMEOUT_S"] = str(timeout_s)
    log = run_dir / "sim.log"
    t0 = time.perf_counter()
    try:
        _runner().test(test_module=test_module, hdl_toplevel=built.top, hdl_toplevel_lang="verilog",
                       build_dir=built.directory,
                       test_dir=run_dir, results_xml=str(run_dir / "results.xml"), seed=seed,
                       extra_env=env, waves=waves, log_file=log)
        failed = _failures(run_dir / "results.xml")
    except (RuntimeError, SystemExit) as exc:
        failed = f"simulator exited abnormally ({exc})"
    wall = time.perf_counter() - t0
    tail = "\n".join(log.read_text().splitlines()[-30:]) if log.is_file() else ""
    out_path = run_dir / "out.json"
    if failed or not out_path.is_file():
        raise SimulationError(f"{test_module} failed: {failed or 'no output written'}\n{tail}")
    output = json.loads(out_path.read_text())
    if waves:
        return TestRun(output, run_dir, run_dir / "dump.vcd", wall, tail)
    shutil.rmtree(run_dir, ignore_errors=True)
    return TestRun(output, None, None, wall, tail)


def _runner():
    from cocotb_tools.runner import get_runner

    runner = get_runner("verilator")
    runner.log.setLevel(logging.WARNING)
    return runner


def _failures(results_xml: Path) -> str:
    from cocotb_tools.check_results import get_results

    tests, failed = get_results(results_xml)
    if tests == 0:
        return "no cocotb test ran"
    return f"{failed} of {tests} cocotb tests failed" if failed else ""


def build_errors(log_text: str, limit: int = 20) -> str:
    """Verilator's ``%Error`` lines (or the log's tail when there are none)."""
    lines = log_text.splitlines()
    errors = [ln for ln in lines if ln.startswith(("%Error", "%Warning")) or " error: " in ln]
    return "\n".join((errors or lines[-limit:])[:limit])
