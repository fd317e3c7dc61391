"""Fast Verilator runs of a whole accelerator: a generated C++ harness with a DRAM model.

The accelerator's ports are those of :func:`hw.rtl.accel_ports.accel_signature` (bus width
``W`` bytes, read off the Verilog's ``mem_req_wdata``) plus ``clk`` and ``rst`` (reset high,
synchronous). The harness feeds it a program (128-bit words of :func:`hw.front.isa.encode`)
and serves its memory port from a DRAM model; :mod:`sim.benches.accel_bench` (cocotb) follows
the same definitions, so both engines give the same cycles and the same final DRAM.

*DRAM model* (exact, deterministic): a byte array of the given size (the run's ``dram``
image); it serves a request in every cycle (the port has no backpressure). In each counted
cycle ``c`` with ``mem_req_valid`` high:

* a write (``mem_req_write`` high) stores the low ``mem_req_len`` bytes of
  ``mem_req_wdata`` (byte 0 in bits 0-7) at ``mem_req_addr`` .. ``+ len - 1`` at the end of
  cycle ``c``;
* a read captures the ``mem_req_len`` bytes at ``mem_req_addr`` in cycle ``c`` and answers
  them in cycle ``c + L`` (``L``, the latency, a run parameter ``>= 1``): during that cycle
  ``mem_resp_valid`` is 1 and ``mem_resp_data`` holds the bytes in its low bytes, every
  other byte 0. In any cycle that answers no read, ``mem_resp_valid`` and ``mem_resp_data``
  are 0;
* a request with ``len`` 0, ``len > W`` or ``addr + len`` beyond the DRAM stops the run with
  an error naming the cycle, the address and the length (:class:`SimulationError`).

*Cycle protocol*: ``rst`` is held 1 for two rising edges of ``clk`` (not counted; the command
and response inputs 0), then cycle 0, the first counted cycle, begins with ``rst`` 0. In
each cycle ``c`` the harness sets the cycle's inputs (``cmd_valid``, ``cmd_data``,
``mem_resp_valid``, ``mem_resp_data``), evaluates the model with ``clk`` low, samples the
outputs (``cmd_ready``, ``busy``, ``mem_req_*``), serves the memory request, and ends the
cycle with a rising edge. The words are presented in order from cycle 0, ``cmd_valid`` 1: a
word is consumed at the end of a cycle where ``cmd_valid`` and ``cmd_ready`` are both 1, the
next word is presented from the next cycle, and after the last one ``cmd_valid`` is 0 (and
``cmd_data`` 0). The run ends in cycle ``cycles``: the first cycle after the one that
consumed the last word (from cycle 0 on, for an empty program) in which ``busy`` is 0. No
edge follows it, but its memory request, if any, is served: the final DRAM is the image at
the end of cycle ``cycles`` (a read made there is never answered). So ``cycles`` is the
number of rising edges after reset. A run whose ``cycles`` would exceed ``max_cycles`` stops
with :class:`SimulationError` naming ``max_cycles``.

The harness prints ``progress cycles=N`` to stderr every ``progress_interval`` cycles (by
default :data:`PROGRESS_INTERVAL`); :func:`run_accel_fast` hands ``N`` to its ``progress``
callback as the lines come. Builds are cached, locked and (by default) profile guided by
:func:`sim.fast.cached_build`; the training run executes :data:`TRAIN_WORDS` (a lone
``fence``, which every accelerator takes) on a zero DRAM of :data:`TRAIN_DRAM_BYTES` bytes,
unless the caller passes a program of its own.
"""

from __future__ import annotations

import hashlib
import subprocess
import tempfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from hw.front.isa import Instruction, encode
from hw.rtl import accel_ports as ap
from hw.rtl.ports import port_widths

from .errors import BuildError, SimulationError
from .fast import EXECUTABLE, FAST_FLAGS, cached_build, exit_text, scan_ports
from .toolchain import ensure_on_path

__all__ = ["ACCEL_FLAGS", "EXTRA_VERILATOR_FLAGS", "MAX_LATENCY", "PROGRESS_INTERVAL",
           "TRAIN_DRAM_BYTES", "TRAIN_WORDS", "AccelBuild", "AccelRun", "accel_ports",
           "build_accel_fast", "check_run_args", "run_accel_fast"]

#: Verilator flags of the accelerator engines, on top of their flow's own: Amaranth emits an
#: FSM as a ``case`` without ``default``, which Verilator's lint stops at.
EXTRA_VERILATOR_FLAGS: tuple[str, ...] = ("-Wno-CASEINCOMPLETE",)
#: Verilator flags of the fast accelerator build.
ACCEL_FLAGS: tuple[str, ...] = (*FAST_FLAGS, *EXTRA_VERILATOR_FLAGS)
#: Default cycles between two progress lines of the harness.
PROGRESS_INTERVAL = 1 << 20
#: Largest DRAM latency the engines take (the harness keeps ``L`` response slots).
MAX_LATENCY = 1 << 16
#: The profile-guided build's training program: a lone ``fence``.
TRAIN_WORDS: tuple[int, ...] = (encode(Instruction("fence")),)
#: Size of the training run's all-zero DRAM.
TRAIN_DRAM_BYTES = 1 << 16
#: DRAM latency and cycle limit of the training run.
_TRAIN_LATENCY, _TRAIN_CYCLES = 8, 200_000
_WORD_BYTES = ap.WORD_BITS // 8
_CLOCK, _RESET = "clk", "rst"
#: Exit codes of the harness: cycle limit reached, memory request outside the model.
_TIMEOUT_RC, _MEMORY_RC = 3, 4


@dataclass(frozen=True)
class AccelBuild:
    """A finished fast build of an accelerator: ``executable`` runs the harness."""

    directory: Path
    executable: Path
    top: str
    key: str
    cached: bool                    #: True when an earlier build was reused
    seconds: float                  #: wall time spent in build_accel_fast (near 0 when cached)
    bus_bytes: int                  #: W, the memory port's bytes per request
    ports: dict[str, int] = field(hash=False)   #: port -> width in bits
    profile_guided: bool = False


@dataclass(frozen=True)
class AccelRun:
    """One run of a program on an accelerator (definitions in the module docstring)."""

    cycles: int                     #: the cycle in which the accelerator was done
    dram: bytes = field(repr=False)  #: the whole DRAM at the end of cycle ``cycles``
    wall_s: float                   #: wall time of the counted cycles (the simulator's own)
    cycles_per_s: float             #: cycles / wall_s (0.0 when wall_s is 0)


def accel_ports(verilog: str, top: str) -> dict[str, int]:
    """The widths of ``top``'s accelerator ports, checked against
    :func:`~hw.rtl.accel_ports.accel_signature` of its bus width, plus ``clk`` and ``rst``.

    Raises :class:`BuildError` naming the missing port or the one of a wrong width.
    """
    ports = scan_ports(verilog, top)
    wdata = ports.get(ap.MEM_REQ_WDATA)
    if wdata is None or wdata % 8:
        raise BuildError(f"{top}.{ap.MEM_REQ_WDATA} must be a whole number of bytes wide "
                         f"(the bus), got {wdata if wdata is not None else 'no such port'}")
    wanted = {_CLOCK: 1, _RESET: 1, **port_widths(ap.accel_signature(wdata // 8))}
    missing = [name for name in wanted if name not in ports]
    if missing:
        raise BuildError(f"{top} lacks accelerator ports: {', '.join(missing)}")
    for name, width in wanted.items():
        if ports[name] != width:
            raise BuildError(f"{top}.{name} is {ports[name]} bits; a {wdata // 8}-byte bus "
                             f"needs {width}")
    return wanted


def check_run_args(words: Sequence[int], dram: bytes, latency: int,
                   max_cycles: int) -> list[int]:
    """The checks both engines make on a run's arguments; returns ``words`` as a list.

    ``words``: 128-bit unsigned integers; ``dram``: bytes (may be empty); ``latency`` in
    ``1 .. MAX_LATENCY``; ``max_cycles >= 0``. Raises ``ValueError`` naming the bad value.
    """
    words = list(words)
    for i, w in enumerate(words):
        if isinstance(w, bool) or not isinstance(w, int) or not 0 <= w < 1 << ap.WORD_BITS:
            raise ValueError(f"words[{i}] must be a {ap.WORD_BITS}-bit unsigned integer, "
                             f"got {w!r}")
    if not isinstance(dram, bytes | bytearray | memoryview):
        raise ValueError(f"dram must be bytes, got {type(dram).__name__}")
    if isinstance(latency, bool) or not isinstance(latency, int) or \
            not 1 <= latency <= MAX_LATENCY:
        raise ValueError(f"latency must be an integer in 1..{MAX_LATENCY}, got {latency!r}")
    if isinstance(max_cycles, bool) or not isinstance(max_cycles, int) or max_cycles < 0:
        raise ValueError(f"max_cycles must be a non-negative integer, got {max_cycles!r}")
    return words


_PRELUDE = """// Fast accelerator harness for {top}, generated by sim/accel_fast.py (the DRAM model
// and the cycle protocol: that module's docstring). Usage:
//   fastsim WORDS.bin DRAM_IN.bin DRAM_OUT.bin LATENCY MAX_CYCLES PROGRESS_INTERVAL
// WORDS: 16 bytes per instruction word, little endian; DRAM_*: the DRAM image.
#include "V{top}.h"
#define LEGO_TOP V{top}
#define LEGO_BUS_BYTES {bus_bytes}u
#define LEGO_TIMEOUT_RC {timeout_rc}
#define LEGO_MEMORY_RC {memory_rc}
"""

#: The harness body; port names are those of :mod:`hw.rtl.accel_ports`.
_HARNESS = r"""
#include "verilated.h"
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

namespace {

std::vector<uint8_t> slurp(const char* path) {
    FILE* f = std::fopen(path, "rb");
    if (!f) { std::fprintf(stderr, "fastsim: cannot open %s\n", path); std::exit(2); }
    std::fseek(f, 0, SEEK_END);
    const long n = std::ftell(f);
    std::fseek(f, 0, SEEK_SET);
    if (n < 0) { std::fprintf(stderr, "fastsim: cannot size %s\n", path); std::exit(2); }
    std::vector<uint8_t> v(static_cast<size_t>(n));
    if (!v.empty() && std::fread(v.data(), 1, v.size(), f) != v.size()) {
        std::fprintf(stderr, "fastsim: short read of %s\n", path);
        std::exit(2);
    }
    std::fclose(f);
    return v;
}

// Ports up to 64 bits are integers, wider ones VlWide arrays of 32-bit words (word 0 lowest).
template <typename T> inline void put_bytes(T& port, const uint8_t* src, unsigned n) {
    uint64_t v = 0;
    for (unsigned i = 0; i < n; ++i) v |= static_cast<uint64_t>(src[i]) << (8 * i);
    port = static_cast<T>(v);
}
template <std::size_t N> inline void put_bytes(VlWide<N>& port, const uint8_t* src, unsigned n) {
    for (std::size_t w = 0; w < N; ++w) {
        uint32_t v = 0;
        for (unsigned b = 0; b < 4 && 4 * w + b < n; ++b)
            v |= static_cast<uint32_t>(src[4 * w + b]) << (8 * b);
        port[w] = v;
    }
}
template <typename T> inline void get_bytes(const T& port, uint8_t* dst, unsigned n) {
    const uint64_t v = port;
    for (unsigned i = 0; i < n; ++i) dst[i] = static_cast<uint8_t>(v >> (8 * i));
}
template <std::size_t N> inline void get_bytes(const VlWide<N>& port, uint8_t* dst, unsigned n) {
    for (unsigned i = 0; i < n; ++i) dst[i] = static_cast<uint8_t>(port[i / 4] >> (8 * (i % 4)));
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 7) {
        std::fprintf(stderr, "usage: %s WORDS DRAM_IN DRAM_OUT LATENCY MAX_CYCLES INTERVAL\n",
                     argv[0]);
        return 2;
    }
    const std::vector<uint8_t> words = slurp(argv[1]);
    std::vector<uint8_t> dram = slurp(argv[2]);
    const uint64_t latency = std::strtoull(argv[4], nullptr, 10);
    const uint64_t max_cycles = std::strtoull(argv[5], nullptr, 10);
    const uint64_t interval = std::strtoull(argv[6], nullptr, 10);
    if (words.size() % 16 || latency < 1 || interval < 1) {
        std::fprintf(stderr, "fastsim: bad arguments\n");
        return 2;
    }
    const size_t n_words = words.size() / 16;
    const uint64_t size = dram.size();
    const unsigned W = LEGO_BUS_BYTES;
    static const uint8_t zeros[LEGO_BUS_BYTES > 16 ? LEGO_BUS_BYTES : 16] = {};

    const std::unique_ptr<VerilatedContext> ctx{new VerilatedContext};
    const std::unique_ptr<LEGO_TOP> top{new LEGO_TOP{ctx.get(), "TOP"}};
    LEGO_TOP* const t = top.get();
    t->clk = 0; t->rst = 1; t->cmd_valid = 0; t->mem_resp_valid = 0;
    put_bytes(t->cmd_data, zeros, 16);
    put_bytes(t->mem_resp_data, zeros, W);
    t->eval();
    for (int i = 0; i < 2; ++i) { t->clk = 1; t->eval(); t->clk = 0; t->eval(); }
    t->rst = 0;

    // Read responses in flight: slot s answers in cycle due[s] (the request of cycle c takes
    // slot c % latency: it is presented, then reused, in cycle c + latency).
    std::vector<uint64_t> due(latency, UINT64_MAX);
    std::vector<uint8_t> slots(latency * W);
    size_t next = 0, slot = 0;
    bool consumed = false, answering = false;
    if (n_words) { put_bytes(t->cmd_data, &words[0], 16); t->cmd_valid = 1; }
    uint64_t c = 0, countdown = interval;
    const auto t0 = std::chrono::steady_clock::now();
    for (;; ++c) {
        if (consumed) {                     // the inputs of cycle c
            consumed = false;
            if (++next < n_words) put_bytes(t->cmd_data, &words[16 * next], 16);
            else { t->cmd_valid = 0; put_bytes(t->cmd_data, zeros, 16); }
        }
        if (due[slot] == c) {
            put_bytes(t->mem_resp_data, &slots[slot * W], W);
            t->mem_resp_valid = 1;
            answering = true;
        } else if (answering) {
            put_bytes(t->mem_resp_data, zeros, W);
            t->mem_resp_valid = 0;
            answering = false;
        }
        t->clk = 0;
        t->eval();
        const bool finished = next == n_words && !t->busy;
        if (!finished && c == max_cycles) {
            const long long ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                std::chrono::steady_clock::now() - t0).count();
            std::printf("status=timeout cycles=%llu run_ns=%lld\n",
                        static_cast<unsigned long long>(c), ns);
            return LEGO_TIMEOUT_RC;
        }
        if (t->mem_req_valid) {             // every request is taken
            const bool write = t->mem_req_write;
            const uint64_t addr = t->mem_req_addr;
            const unsigned len = t->mem_req_len;
            if (len < 1 || len > W || addr + len > size) {
                std::fprintf(stderr, "fastsim: cycle %llu: %s request addr=0x%llx len=%u "
                             "outside the DRAM model (%llu bytes, lengths 1..%u)\n",
                             static_cast<unsigned long long>(c), write ? "write" : "read",
                             static_cast<unsigned long long>(addr), len,
                             static_cast<unsigned long long>(size), W);
                return LEGO_MEMORY_RC;
            }
            if (write) {
                get_bytes(t->mem_req_wdata, &dram[addr], len);
            } else {
                uint8_t* const s = &slots[slot * W];
                std::memcpy(s, &dram[addr], len);
                std::memset(s + len, 0, W - len);
                due[slot] = c + latency;
            }
        }
        if (finished) break;
        consumed = next < n_words && t->cmd_ready;
        t->clk = 1;
        t->eval();
        if (++slot == latency) slot = 0;
        if (--countdown == 0) {
            countdown = interval;
            std::fprintf(stderr, "progress cycles=%llu\n", static_cast<unsigned long long>(c + 1));
            std::fflush(stderr);
        }
    }
    const long long ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
        std::chrono::steady_clock::now() - t0).count();
    t->final();
    FILE* out = std::fopen(argv[3], "wb");
    if (!out || (!dram.empty() && std::fwrite(dram.data(), 1, dram.size(), out) != dram.size())
        || std::fclose(out) != 0) {
        std::fprintf(stderr, "fastsim: cannot write %s\n", argv[3]);
        return 2;
    }
    std::printf("status=done cycles=%llu run_ns=%lld\n", static_cast<unsigned long long>(c), ns);
    return 0;
}
"""


def _main_source(top: str, bus_bytes: int) -> str:
    """The harness C++ for ``top`` with a ``bus_bytes``-byte memory port."""
    return _PRELUDE.format(top=top, bus_bytes=bus_bytes, timeout_rc=_TIMEOUT_RC,
                           memory_rc=_MEMORY_RC) + _HARNESS


def build_accel_fast(verilog: str, top: str, *, cache_root: Path | None = None,
                     profile_guided: bool = True,
                     train_words: Sequence[int] | None = None,
                     train_dram: bytes | None = None) -> AccelBuild:
    """Build accelerator ``top`` of ``verilog`` with the DRAM harness, reusing a cached build.

    The top must have the ports of :func:`accel_ports` (else :class:`BuildError`).
    ``profile_guided``: compile twice around a training run of ``train_words`` on
    ``train_dram`` (default :data:`TRAIN_WORDS` on :data:`TRAIN_DRAM_BYTES` zero bytes;
    latency 8, at most 200,000 cycles; a run that ends in a memory error or the cycle limit
    still trains). A failed build raises :class:`BuildError` with the tools' error lines.
    """
    ports = accel_ports(verilog, top)
    bus_bytes = ports[ap.MEM_REQ_WDATA] // 8
    dram = bytes(TRAIN_DRAM_BYTES) if train_dram is None else bytes(train_dram)
    words = check_run_args(TRAIN_WORDS if train_words is None else train_words, dram,
                           _TRAIN_LATENCY, _TRAIN_CYCLES)
    ensure_on_path()
    source = _main_source(top, bus_bytes)
    markers: tuple[str, ...] = ()
    train = None
    if profile_guided:
        markers = ("pgo", "accel-train=" + ",".join(map(hex, words)),
                   f"accel-train-dram={hashlib.sha256(dram).hexdigest()[:20]}")
        train = partial(_train, top=top, words=words, dram=dram)
    directory, key, cached, seconds = cached_build(
        verilog, top, source, verilator_flags=ACCEL_FLAGS, markers=markers, train=train,
        cache_root=cache_root, marker={"ports": ports, "bus_bytes": bus_bytes})
    return AccelBuild(directory, directory / EXECUTABLE, top, key, cached, seconds, bus_bytes,
                      ports, profile_guided)


def _train(executable: Path, workdir: Path, *, top: str, words: list[int],
           dram: bytes) -> None:
    """The training run of a profile-guided build (see :func:`build_accel_fast`)."""
    paths = _write_inputs(workdir, words, dram)
    proc = subprocess.run([str(executable), *map(str, paths), str(_TRAIN_LATENCY),
                           str(_TRAIN_CYCLES), str(PROGRESS_INTERVAL)],
                          capture_output=True, text=True, errors="replace")
    if proc.returncode not in (0, _TIMEOUT_RC, _MEMORY_RC):
        raise BuildError(f"{top}: the profiling run {exit_text(proc.returncode)}\n"
                         + "\n".join(proc.stderr.splitlines()[-20:]))


def _write_inputs(directory: Path, words: list[int], dram: bytes) -> tuple[Path, Path, Path]:
    """Write the harness's input files into ``directory``: (words, DRAM in, DRAM out)."""
    paths = (directory / "words.bin", directory / "dram-in.bin", directory / "dram-out.bin")
    paths[0].write_bytes(b"".join(w.to_bytes(_WORD_BYTES, "little") for w in words))
    paths[1].write_bytes(dram)
    return paths


def run_accel_fast(
    build: AccelBuild,
    words: Sequence[int],
    dram: bytes,
    *,
    latency: int,
    max_cycles: int,
    progress: Callable[[int], None] | None = None,
    progress_interval: int = PROGRESS_INTERVAL,
    timeout_s: float | None = None,
) -> AccelRun:
    """Run program ``words`` on ``build`` with ``dram`` as the DRAM's image (module docstring).

    ``progress(n)`` is called every ``progress_interval`` cycles with the cycles so far.
    Raises ``ValueError`` for bad arguments (:func:`check_run_args`) and
    :class:`SimulationError` when the run needs more than ``max_cycles`` cycles, makes a
    request outside the DRAM model (the message names cycle, address and length), crashes
    (with the harness's stderr tail) or runs past ``timeout_s`` seconds of wall time.
    """
    words = check_run_args(words, dram, latency, max_cycles)
    if isinstance(progress_interval, bool) or not isinstance(progress_interval, int) or \
            progress_interval < 1:
        raise ValueError(f"progress_interval must be a positive integer, got "
                         f"{progress_interval!r}")
    with tempfile.TemporaryDirectory(prefix=f"lego-accel-{build.top}-") as tmp:
        paths = _write_inputs(Path(tmp), words, bytes(dram))
        cmd = [str(build.executable), *map(str, paths), str(latency), str(max_cycles),
               str(progress_interval)]
        with open(Path(tmp) / "stdout.txt", "w+") as stdout:
            rc, errors, timed_out = _stream(cmd, stdout, progress, timeout_s)
            stdout.seek(0)
            stats = dict(kv.split("=", 1) for kv in stdout.read().split() if "=" in kv)
        if timed_out:
            raise SimulationError(f"{build.top}: fast run exceeded {timeout_s} s")
        if rc == _TIMEOUT_RC and stats.get("status") == "timeout":
            raise SimulationError(f"{build.top}: busy still high (or words left) after "
                                  f"max_cycles={max_cycles} cycles")
        if rc == _MEMORY_RC:
            raise SimulationError(f"{build.top}: " + (errors[-1] if errors else "memory error")
                                  .removeprefix("fastsim: "))
        if rc != 0 or stats.get("status") != "done":
            raise SimulationError(f"{build.top}: fast harness {exit_text(rc)}\n"
                                  + "\n".join(errors[-20:]))
        final = paths[2].read_bytes()
    cycles, wall = int(stats["cycles"]), int(stats["run_ns"]) * 1e-9
    return AccelRun(cycles, final, wall, cycles / wall if wall > 0 else 0.0)


def _stream(cmd: list[str], stdout, progress: Callable[[int], None] | None,
            timeout_s: float | None) -> tuple[int, list[str], bool]:
    """Run ``cmd``, calling ``progress`` per progress line of its stderr as it comes.

    Returns the exit code, the other stderr lines and whether ``timeout_s`` killed it.
    """
    proc = subprocess.Popen(cmd, stdout=stdout, stderr=subprocess.PIPE, text=True,
                            errors="replace")
    fired = threading.Event()

    def kill() -> None:
        fired.set()
        proc.kill()

    timer = threading.Timer(timeout_s, kill) if timeout_s is not None else None
    if timer is not None:
        timer.daemon = True
        timer.start()
    errors: list[str] = []
    try:
        assert proc.stderr is not None
        for line in proc.stderr:
            if line.startswith("progress cycles="):
                if progress is not None:
                    progress(int(line.split("=", 1)[1]))
            else:
                errors.append(line.rstrip("\n"))
        rc = proc.wait()
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    finally:
        if timer is not None:
            timer.cancel()
    return rc, errors, fired.is_set()
