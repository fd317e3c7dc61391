"""The e2e run's accelerator calls joined into **one program** over **one DRAM** for the
whole forward (:func:`forward_program`): what the accelerator would run for the model, every
block in order, with the host's work between the calls done ahead.

Each call ``i`` of the run (:class:`flows.e2e._Gemms` keeps them) brings its program
``P_i``, its DRAM before ``D_i`` and after ``D'_i`` (weights, activations and outputs laid
out by its kernel) and the byte ranges of ``D'_i`` that are its results: all of it, but for
a streaming DuoAttention head its inputs and the decode step's outputs (not those of the
steps that warm its ring: they attend over slots the warming skips, so they depend on what
the scratchpad held before). Call ``i`` gets the DRAM bytes from ``b_i`` (``b_0 = 0``, each
base rounded up to ``ALIGN``); the forward's program is ``relocate(P_0, b_0) ||
relocate(P_1, b_1) || ..`` (:func:`hw.front.isa.relocate`: every DRAM address moved), its
DRAM image the ``D_i`` side by side. A call's inputs are what the host computed from earlier
calls' outputs (norms, RoPE, quantization, in torch): placing them in the image ahead is the
host writing them before that call's program starts, valid because no program reads or
writes another call's bytes (each call's addresses stay inside its own image).

**Checked**: the reference machine runs the joined program from the joined image and must
end in the ``D'_i`` side by side over every call's result ranges, so the calls compose on
one machine (no state a call leaves in the memories or units changes another's result);
with the fast engine the RTL runs the same words from the same image: the same DRAM over
those ranges, and the cycle model's cycles on the joined program (``model_cycles``, below
the calls' sum by the overlap at their junctions).

Not modelled: the host's time between the calls (costed by :mod:`flows.e2e_host`,
sequential), and a kernel reading the previous one's output in place without the host.

Layer: flows (it runs the RTL engines).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hw.front.accel_params import accel_params
from hw.front.accel_timing import accel_timing
from hw.front.arch import ArchSpec
from hw.front.isa import ProgramError, relocate
from hw.front.isa_machine import Machine
from hw.front.kernel_runs import ALIGN

__all__ = ["ForwardProgram", "forward_program"]


@dataclass(frozen=True)
class ForwardProgram:
    """The joined program of ``calls`` accelerator calls: its instructions, DRAM bytes, the
    cycle model's cycles on it and the calls' own summed, the RTL's (``None``: reference
    engine), whether every engine ended in the calls' own results (False also when the joined
    program fails on the reference machine)."""

    calls: int
    instructions: int
    dram_bytes: int
    model_cycles: int
    calls_cycles: int
    rtl_cycles: int | None
    dram_match: bool

    @property
    def passed(self) -> bool:
        return self.dram_match and self.rtl_cycles in (None, self.model_cycles)


def _joined(calls: list[tuple]) -> tuple[list, bytes, bytes, list[tuple[int, int]]]:
    """(the joined program, DRAM before, DRAM after, the result ranges in it) of ``calls``
    (module docstring)."""
    words: list = []
    before, after = bytearray(), bytearray()
    ranges: list[tuple[int, int]] = []
    for _, program, dram_in, dram_out, results in calls:
        base = -(-len(before) // ALIGN) * ALIGN
        before += bytes(base - len(before))
        after += bytes(base - len(after))
        words += relocate(program, base)
        ranges += [(base + a, base + b) for a, b in results or [(0, len(dram_out))]]
        before += dram_in
        after += dram_out
    return words, bytes(before), bytes(after), ranges


def _same(dram: bytes, after: bytes, ranges: list[tuple[int, int]]) -> bool:
    return len(dram) == len(after) and all(dram[a:b] == after[a:b] for a, b in ranges)


def forward_program(arch: ArchSpec, calls: list[tuple], engine: str | None
                    ) -> ForwardProgram | None:
    """The run's ``calls`` (name, program, DRAM before, after, result ranges) joined and
    checked (module docstring) on the reference machine and, with ``engine="fast"``, the
    RTL; None without calls."""
    if not calls:
        return None
    words, before, after, ranges = _joined(calls)
    machine = Machine(arch, max(len(before), 1))
    machine.dram[:] = np.frombuffer(before, np.uint8)
    try:
        machine.run(words)
    except ProgramError:            # a join that breaks a call: not the calls' results
        return ForwardProgram(len(calls), len(words), len(before),
                              accel_timing(words, accel_params(arch)).cycles,
                              sum(accel_timing(c[1], accel_params(arch)).cycles for c in calls),
                              None, False)
    same = _same(machine.dram.tobytes(), after, ranges)
    params = accel_params(arch)
    model = accel_timing(words, params).cycles
    own = sum(accel_timing(call[1], params).cycles for call in calls)
    rtl = None
    if engine == "fast":
        from .accel_engines import run_program

        r = run_program(arch, words, before, engine="fast", expected_cycles=model)
        rtl, same = r.cycles, same and _same(r.dram, after, ranges)
    return ForwardProgram(len(calls), len(words), len(before), model, own, rtl, same)
