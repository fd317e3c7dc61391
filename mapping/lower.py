"""A mapped model's accelerator steps lowered to runnable programs: each step's kernel program
rebuilt from its ``schedule`` alone, a DRAM image of seeded random operands, and the reference
machine's DRAM after the run (:func:`lower_step`, :func:`lower_model`), written to a folder
another machine can run them from (:func:`save_lowered`).

**Programs** (one program of the step; the step runs it ``repeat`` x ``times`` back to back):

* ``gemm`` / ``conv2d``: the kernel library's program of the extents under the step's
  dataflow and the schedule's :class:`~hw.front.kernel_schedule.GemmSchedule` (its fields are
  the schedule's keys), operands at :func:`~hw.front.kernel_runs.gemm_operands` /
  :func:`~hw.front.kernel_runs.conv_operands`' addresses; A, B (image, weights) int8 codes.
* ``svdquant``: :func:`~hw.front.kernel_svdquant.svdquant_program` of (m, k, n, rank), the
  whole layer (also when the cost was composed from shorter programs); int4 codes one per
  byte, float32 group and branch scales in [2^-7, 2^-6), int8 branch codes.
* ``long_attention``: the head's query tiles one after the other (``queries``, ``keys``,
  ``tile``, ``block``, ``causal``); ``linear_attention``: one head of ``tokens``; int8 q, k,
  v codes, the logit multiplier 1 and shift 0 (as :mod:`mapping.accel_attention` builds
  them). A head's whole program also when its cost was composed from shorter ones.
* ``duo_steps``: the streaming head's steps at positions ``keys - queries ..``. A step reads
  the ring cache the head's earlier programs left in the scratchpad, so the lowered step
  carries a ``setup``: the cache's reset, the steps of the positions the cache still holds
  (the sinks, the last ``recent``) and ``kv_cache advance`` over the others; an engine runs
  ``setup + program`` (:attr:`LoweredStep.words`) from ``dram_in``. ``model_cycles`` is the
  step program's alone, ``run_cycles`` all the words' (not their sum: the setup's tail
  overlaps the step's head). The skipped positions' outputs stay zero in ``dram_out``; the
  step's own are the whole head's.

Every program (with its setup) of more than ``max_instructions`` (default
:data:`MAX_INSTRUCTIONS`) is refused with ``ValueError`` before it is built, as is a host step
(no accelerator program). The reference machine (:class:`~hw.front.isa_machine.Machine`) runs
the words on ``dram_in``; ``dram_out`` is its DRAM afterwards. Deterministic for a seed.

**Files** (:func:`save_lowered`): per step ``NNN.words.bin`` (the words, 16 bytes each, the
:func:`~hw.front.isa.encode` word little-endian: what the fast engine's harness reads),
``NNN.dram-in.bin``, ``NNN.dram-out.bin``, and ``manifest.json`` (per step its name, files,
DRAM latency, instructions, cycles, schedule).

Layer: mapping (numpy for the operands).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from hw.front.arch import ArchSpec
from hw.front.isa import WORD_BITS, Instruction, encode
from hw.front.kernel_attention import run_linear_attention
from hw.front.kernel_chain import blocks, unit_command
from hw.front.kernel_duo import DuoHead
from hw.front.kernel_duo_long import run_long_prefill
from hw.front.kernel_runs import KernelRun, conv_operands, gemm_operands, run_conv, run_gemm
from hw.front.kernel_schedule import GemmSchedule
from hw.front.kernel_svdquant import run_svdquant_linear

from .ir import ModelGraph
from .mapper import map_op
from .op_cost import OpCost, timed
from .policy import DEFAULT_POLICY, Policy
from .schedule import write_json_atomic

__all__ = ["MAX_INSTRUCTIONS", "LoweredStep", "gemm_schedule", "lower_model", "lower_step",
           "save_lowered", "warm_head"]

MAX_INSTRUCTIONS = 200_000
"""Most instructions (setup included) a lowered step may hold: the reference machine runs a
few thousand a second (a 512 x 512 x 512 GEMM's 4,225 in about 2 s), so a minute or two."""

_MAX_ROWS = 4095        #: a unit command's rows field
_Built = tuple[list[Instruction], list[Instruction], bytes, bytes]    # setup, program, in, out


@dataclass(frozen=True)
class LoweredStep:
    """One accelerator step as a runnable program (module docstring): ``program`` is the one
    the cost model timed (``model_cycles`` on it; the step is ``repeat`` x ``times`` runs of
    it, ``cycles`` the mapped step's total), ``setup`` what runs before it (DuoAttention
    steps; else empty); ``dram_in`` the DRAM an engine starts from, ``dram_out`` the
    reference machine's after ``setup + program``, ``run_cycles`` the cycle model's on
    those words (what the RTL reports), ``schedule`` the step's (a copy)."""

    name: str
    arch: str
    lowering: str
    dataflow: str
    program: tuple[Instruction, ...]
    dram_in: bytes = field(repr=False)
    dram_out: bytes = field(repr=False)
    model_cycles: int
    repeat: int
    times: int
    cycles: int
    exact: bool
    setup: tuple[Instruction, ...] = ()
    run_cycles: int = 0
    schedule: dict[str, Any] = field(default_factory=dict, hash=False)
    dram_latency: int = 1           #: the architecture's, in cycles (an engine's argument)

    @property
    def runs(self) -> int:
        """Back-to-back runs of ``program`` the step is: ``repeat x times``."""
        return self.repeat * self.times

    @property
    def words(self) -> tuple[Instruction, ...]:
        """What an engine runs: ``setup + program``."""
        return self.setup + self.program


def _codes(rng: np.random.Generator, lo: int, hi: int, shape: tuple[int, ...]) -> np.ndarray:
    return rng.integers(lo, hi + 1, shape)


def _scales(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return (rng.random(shape) + 1.0).astype(np.float32) * np.float32(2.0 ** -7)


def gemm_schedule(s: dict[str, Any]) -> GemmSchedule:
    """The :class:`GemmSchedule` whose fields are the keys of ``s``, a GEMM or convolution
    step's ``schedule`` (lists from JSON: tuples)."""
    return GemmSchedule(**{f.name: tuple(v) if isinstance(v := s[f.name], list) else v
                           for f in fields(GemmSchedule)})


def _done(run: KernelRun) -> _Built:
    return [], list(run.program), run.dram_in, run.machine.dram.tobytes()


def _gemm(arch: ArchSpec, flow: str, s: dict[str, Any], rng: np.random.Generator) -> _Built:
    (m, n, k), t = s["extents"], arch.types
    a, b = _codes(rng, t[0].min, t[0].max, (m, k)), _codes(rng, t[1].min, t[1].max, (k, n))
    return _done(run_gemm(arch, flow, gemm_operands(arch, m, n, k), a, b, gemm_schedule(s)))


def _conv(arch: ArchSpec, flow: str, s: dict[str, Any], rng: np.random.Generator) -> _Built:
    c, h, w, kk, r, ss = s["extents"]
    t = arch.types[0]
    image, weights = _codes(rng, t.min, t.max, (c, h, w)), _codes(rng, t.min, t.max,
                                                                   (kk, c, r, ss))
    return _done(run_conv(arch, flow, conv_operands(arch, c, h, w, kk, r, ss), image, weights,
                          gemm_schedule(s)))


def _svdquant(arch: ArchSpec, flow: str, s: dict[str, Any], rng: np.random.Generator
              ) -> _Built:
    m, k, n, r = s["extents"]
    g = k // arch.units.dequant.group
    return _done(run_svdquant_linear(
        arch, _codes(rng, -8, 7, (m, k)), _scales(rng, (m, g)), _codes(rng, -8, 7, (n, k)),
        _scales(rng, (n, g)), _codes(rng, -128, 127, (m, k)), _scales(rng, (m,)),
        _codes(rng, -128, 127, (k, r)), _codes(rng, -128, 127, (r, n)), _scales(rng, (n,))))


def _long(arch: ArchSpec, flow: str, s: dict[str, Any], rng: np.random.Generator) -> _Built:
    g, d, q, k = s["group"], s["head_dim"], s["queries"], s["keys"]
    qc, kc, vc = (_codes(rng, -128, 127, shape) for shape in ((g, q, d), (k, d), (k, d)))
    return _done(run_long_prefill(arch, qc, kc, vc, 1, 0, tile=s["tile"], kb=s["block"],
                                  causal=s["causal"]))


def _linear(arch: ArchSpec, flow: str, s: dict[str, Any], rng: np.random.Generator
            ) -> _Built:
    n, d = s["tokens"], s["head_dim"]
    qc, kc, vc = (_codes(rng, -128, 127, (n, d)) for _ in range(3))
    return _done(run_linear_attention(arch, qc, kc, vc))


def warm_head(head: DuoHead, length: int, chunk: int) -> list[Instruction]:
    """Bring ``head`` (just reset) to ``length`` tokens as the cache holds them: the steps of
    the sink positions and of the last ``recent`` ones, ``kv_cache advance`` over the ones
    between (their slots are overwritten by then); the instructions run."""
    sink, recent = head.window
    prog: list[Instruction] = []
    for lo, hi in ((0, min(sink, length)), (max(sink, length - recent), length)):
        if lo >= hi:
            continue
        if head.length < lo:
            skip = [unit_command("kv_cache", "advance", rows=n, kv=head.kv)
                    for _, n in blocks(lo - head.length, _MAX_ROWS)]
            head.machine.run(skip)
            head.length, prog = lo, prog + skip
        for _, c in blocks(hi - head.length, chunk):
            head.step(c)
            prog += head.last_program
    return prog


def _duo(arch: ArchSpec, flow: str, s: dict[str, Any], rng: np.random.Generator) -> _Built:
    g, d, q, k, chunk = s["group"], s["head_dim"], s["queries"], s["keys"], s["chunk"]
    qc, kc, vc = (_codes(rng, -128, 127, shape) for shape in ((g, k, d), (k, d), (k, d)))
    head = DuoHead(arch, qc, kc, vc, 1, 0, *s["window"], max_chunk=chunk)
    dram_in = head.machine.dram.tobytes()          # the reset touches no DRAM
    setup = list(head.reset_program) + warm_head(head, k - q, chunk)
    program: list[Instruction] = []
    for _, c in blocks(q, chunk):
        head.step(c)
        program += head.last_program
    return setup, program, dram_in, head.machine.dram.tobytes()


_BUILDERS = {"gemm": _gemm, "conv2d": _conv, "svdquant": _svdquant, "long_attention": _long,
             "linear_attention": _linear, "duo_steps": _duo}


def _size(cost: OpCost, runs: int) -> int:
    """Instructions of the step's program and setup, known before building them: the cost's
    per run (exactly linear, composed or not), a DuoAttention setup's steps bounded by the
    cache's positions."""
    s, size = cost.schedule, cost.instructions // runs
    if s.get("lowering") == "duo_steps":
        size += size // max(s["steps"], 1) * (-(-sum(s["window"]) // s["chunk"]) + 1)
    return size


def lower_step(arch: ArchSpec, cost: OpCost, *, seed: int = 0,
               max_instructions: int = MAX_INSTRUCTIONS) -> LoweredStep:
    """``cost`` (an accelerator step of ``arch``, e.g. of :func:`~mapping.mapper.map_op`)
    lowered (module docstring), its operands drawn from ``numpy.random.default_rng(seed)``.
    ``ValueError`` for a host step, an unknown lowering, another architecture's step, or a
    program (setup included) of more than ``max_instructions``."""
    s = cost.schedule
    lowering = s.get("lowering", "")
    if cost.target != "accel":
        raise ValueError(f"step {cost.op!r} runs on the {cost.target} ({lowering!r}): it has "
                         "no accelerator program to lower")
    if cost.arch != arch.name:
        raise ValueError(f"step {cost.op!r} was mapped onto {cost.arch!r}, not {arch.name!r}")
    if lowering not in _BUILDERS:
        raise ValueError(f"step {cost.op!r}: no lowering for {lowering!r} (known: "
                         f"{', '.join(_BUILDERS)})")
    repeat, times = s.get("repeat", 1), s.get("times", 1)
    if (size := _size(cost, repeat * times)) > max_instructions:
        raise ValueError(f"step {cost.op!r} ({lowering}) is a program of about {size} "
                         f"instructions, more than the {max_instructions} lowered")
    setup, program, dram_in, dram_out = _BUILDERS[lowering](
        arch, cost.dataflow, s, np.random.default_rng(seed))
    if len(setup) + len(program) > max_instructions:
        raise ValueError(f"step {cost.op!r} ({lowering}) is a program of "
                         f"{len(setup) + len(program)} instructions, more than the "
                         f"{max_instructions} lowered")
    model = timed(arch, program)[0]
    return LoweredStep(cost.op, arch.name, lowering, cost.dataflow, tuple(program), dram_in,
                       dram_out, model, repeat, times, cost.cycles, cost.exact, tuple(setup),
                       timed(arch, setup + program)[0] if setup else model, dict(s),
                       arch.dram.latency_cycles)


def _key(cost: OpCost) -> str:
    return json.dumps([cost.dataflow, cost.schedule], sort_keys=True)


def lower_model(graph: ModelGraph, arch: ArchSpec, *, seed: int = 0,
                policy: Policy = DEFAULT_POLICY,
                max_instructions: int = MAX_INSTRUCTIONS) -> list[LoweredStep]:
    """Every accelerator step of every operator of ``graph`` mapped onto ``arch``
    (:func:`~mapping.mapper.map_op` under ``policy``), lowered by :func:`lower_step` in graph
    order, each distinct (dataflow, schedule) once, named ``stage.step`` after its first
    occurrence; host steps are left out. ``Unmappable`` as the mapper raises it,
    ``ValueError`` as :func:`lower_step` does."""
    out: dict[str, LoweredStep] = {}
    for stage, op in graph.walk():
        for cost in map_op(arch, op, policy=policy).steps:
            if cost.target != "accel" or (key := _key(cost)) in out:
                continue
            step = lower_step(arch, cost, seed=seed, max_instructions=max_instructions)
            out[key] = replace(step, name=f"{stage.name}.{cost.op}")
    return list(out.values())


def _write_step(folder: Path, n: int, step: LoweredStep) -> dict[str, Any]:
    """Step ``n``'s three files in ``folder``; its manifest entry."""
    if not isinstance(step, LoweredStep):
        raise ValueError(f"steps[{n}] is a {type(step).__name__}, not a LoweredStep")
    files = {"words": f"{n:03d}.words.bin", "dram_in": f"{n:03d}.dram-in.bin",
             "dram_out": f"{n:03d}.dram-out.bin"}
    width = WORD_BITS // 8
    (folder / files["words"]).write_bytes(
        b"".join(encode(i).to_bytes(width, "little") for i in step.words))
    (folder / files["dram_in"]).write_bytes(step.dram_in)
    (folder / files["dram_out"]).write_bytes(step.dram_out)
    return {"name": step.name, "arch": step.arch, "lowering": step.lowering,
            "dataflow": step.dataflow, **files, "dram_latency": step.dram_latency,
            "instructions": len(step.words),
            "setup_instructions": len(step.setup), "dram_bytes": len(step.dram_in),
            "run_cycles": step.run_cycles, "model_cycles": step.model_cycles,
            "repeat": step.repeat, "times": step.times, "mapped_cycles": step.cycles,
            "exact": step.exact, "schedule": step.schedule}


def save_lowered(steps: Sequence[LoweredStep], folder: str | Path) -> Path:
    """Write ``steps`` into the new folder ``folder`` (module docstring: per step its words,
    DRAM in and reference DRAM out, and ``manifest.json``), built in a temporary folder beside
    it and renamed into place: on any failure nothing is left. ``ValueError`` when ``folder``
    exists, its parent does not, or a step is not a :class:`LoweredStep`. Returns the
    folder."""
    folder = Path(folder)
    if folder.exists():
        raise ValueError(f"cannot write lowered steps to {str(folder)!r}: it exists")
    if not folder.parent.is_dir():
        raise ValueError(f"cannot write lowered steps to {str(folder)!r}: folder "
                         f"{str(folder.parent)!r} does not exist")
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        entries = [_write_step(tmp, n, step) for n, step in enumerate(steps)]
        write_json_atomic(tmp / "manifest.json", {
            "word_bytes": WORD_BITS // 8, "byte_order": "little",
            "run": "each step's words on its dram-in with its DRAM latency: the final DRAM "
                   "is dram-out, in run_cycles cycles",
            "steps": entries})
        os.rename(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder
