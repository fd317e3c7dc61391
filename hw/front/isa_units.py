"""The reference semantics of the workload-unit commands (``unit unit=... mode=...``).

A unit command streams accumulator rows ``src .. src + rows - 1`` (their first ``cols``
elements, ``x``) through a unit and writes row ``r``'s result to row ``dst + r``. Bits:
``A`` the operand type's, ``C`` the accumulator's. The arithmetic is golden's
(:mod:`golden.fixed_point`, :func:`golden.linear_attention_fixed.normalize`); the units'
datapaths (:mod:`hw.ir.units`) are proven against the same functions.

``requant`` (:mod:`hw.ir.units.requant`), multiplier ``arg``, shift ``s`` = ``shift`` or,
when ``shift = 255``, the unit's power-of-two register ``pow2``:

* ``absmax``: ``pow2 = max(bitlen(max |x|) - (A - 1), 0)`` over all the rows (with ``arg = 1``
  the maximum also covers the rows of the previous ``absmax`` commands since one with
  ``arg = 0``); no write;
* ``operand``: scratchpad ``saturate(round_shift_right(x * arg, s), A)``;
* ``wide``: accumulator ``saturate(round_shift_right(x * arg, s), C)``;
* ``slices``: scratchpad row ``dst + r``, element ``b < cols``: ``(x0 >> ((A - 1) b)) mod
  2**(A - 1)`` of the row's first element ``x0``: the ``A - 1``-bit slices of ``x0``.

``normalizer`` (:mod:`hw.ir.units.normalizer`), ``divide``: per row, the denominator
``den = sum_{b < count} acc[arg + r][b] << ((A - 1) b)`` (one element, or the partial sums of
``slices``), ``out = normalize(x << s, den)`` with the unit's widths, into the accumulator.

Layer: hw.front, the planning layer (plain Python, no Amaranth).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from golden.fixed_point import round_shift_right, saturate

from .isa import SHIFT_FROM_REGISTER, UNIT_MODES, UNIT_NAMES, Instruction

if TYPE_CHECKING:
    from .isa_machine import Machine

__all__ = ["run_unit"]


def _shift(machine: Machine, ins: Instruction) -> int:
    return machine.unit_state["pow2"] if ins["shift"] == SHIFT_FROM_REGISTER else ins["shift"]


def _requant(machine: Machine, mode: str, ins: Instruction, x: np.ndarray) -> None:
    a_bits, c_bits = machine.arch.types[0].bits, machine.arch.types[2].bits
    state = machine.unit_state
    if mode == "absmax":
        top = int(np.abs(x).max(initial=0))
        state["absmax"] = max(top, state["absmax"]) if ins["arg"] == 1 else top
        state["pow2"] = max(state["absmax"].bit_length() - (a_bits - 1), 0)
        return
    rows = slice(ins["dst"], ins["dst"] + ins["rows"])
    if mode == "slices":
        b = np.arange(ins["cols"])
        machine.scratchpad[rows, :ins["cols"]] = \
            (x[:, :1] >> ((a_bits - 1) * b)) & ((1 << (a_bits - 1)) - 1)
        machine.counts["scratchpad_row_writes"] += ins["rows"]
        return
    value = round_shift_right(x * ins["arg"], _shift(machine, ins))
    if mode == "operand":
        machine.scratchpad[rows, :ins["cols"]] = saturate(value, a_bits)
        machine.counts["scratchpad_row_writes"] += ins["rows"]
    else:
        machine.accumulator[rows, :ins["cols"]] = saturate(value, c_bits)
        machine.counts["accumulator_row_writes"] += ins["rows"]


def _normalizer(machine: Machine, ins: Instruction, x: np.ndarray) -> None:
    from golden.linear_attention_fixed import normalize

    unit = machine.arch.units.normalizer
    step = machine.arch.types[0].bits - 1
    parts = machine.accumulator[ins["arg"]:ins["arg"] + ins["rows"], :ins["count"]]
    den = (parts << (step * np.arange(ins["count"]))).sum(axis=1, keepdims=True)
    machine.counts["accumulator_row_reads"] += ins["rows"]
    num = x << _shift(machine, ins)
    out = normalize(num, den, unit.out_frac_bits, unit.den_bits, unit.recip_frac_bits)
    machine.accumulator[ins["dst"]:ins["dst"] + ins["rows"], :ins["cols"]] = out
    machine.counts["accumulator_row_writes"] += ins["rows"]


def run_unit(machine: Machine, ins: Instruction) -> None:
    """Execute the (checked) unit command ``ins`` on ``machine`` (module docstring)."""
    unit = UNIT_NAMES[ins["unit"]]
    mode = UNIT_MODES[unit][ins["mode"]]
    x = machine.accumulator[ins["src"]:ins["src"] + ins["rows"], :ins["cols"]].copy()
    machine.counts["accumulator_row_reads"] += ins["rows"]
    machine.counts[f"{unit}_rows"] += ins["rows"]
    if unit == "requant":
        _requant(machine, mode, ins, x)
    else:
        _normalizer(machine, ins, x)
