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

``kv_cache`` (:mod:`hw.ir.units.kv_address`), descriptor ``kv``: ``reset`` starts an empty
cache of ``sink = src`` sink slots and ``recent = dst`` ring slots (``recent = 0``: a linear
cache of a retrieval head); ``advance`` records ``rows`` more tokens written (its length
``L``). The slots' positions follow from ``(sink, recent, L)``: slot ``s`` holds the last
position ``p < L`` with ``ring_address(p) = s`` (``-1`` while empty); a linear cache's slot
``s`` holds ``s < L``.

``softmax`` (:mod:`hw.ir.units.softmax`), ``weights``, over the keys of descriptor ``kv``
and a chunk: ``rows`` queries, ``cols`` keys, key ``j`` of query ``i`` at accumulator row
``src + (j // Ea) rows + i``, element ``j mod Ea`` (``Ea``: elements of an accumulator row).
Keys ``0 .. S - 1`` are the cache's slots in slot order (``S``: its slots, sink + recent or
``L``, rounded up to whole rows ``Ea``; the padding is masked), keys ``S ..`` the chunk's
``C = cols - S`` tokens at positions ``L ..``; query ``i`` is at position ``L + i mod C``
(``rows`` a multiple of ``C``: the query heads of a group one after the other). With that
mask (:func:`golden.attention_fixed.position_mask`, the descriptor's window),
``w = attention_weights(x, mask)``: scratchpad row ``dst + (j // Es) rows + i``, element
``j mod Es``; the row sums to element 0 of accumulator rows ``arg + i``.

``normalizer`` (:mod:`hw.ir.units.normalizer`), ``divide``: per row, the denominator
``den = sum_{b < count} acc[arg + r][b] << ((A - 1) b)`` (one element, or the partial sums of
``slices``), ``out = normalize(x << s, den)`` with the unit's widths, into the accumulator.

Layer: hw.front, the planning layer (plain Python, no Amaranth).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from golden.fixed_point import round_shift_right, saturate

from .isa import SHIFT_FROM_REGISTER, UNIT_MODES, UNIT_NAMES, Instruction, ProgramError

if TYPE_CHECKING:
    from .isa_machine import Machine

__all__ = ["run_unit", "slot_positions"]


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


def slot_positions(sink: int, recent: int, length: int) -> np.ndarray:
    """The position each slot of a KV cache holds after ``length`` tokens (``-1``: empty);
    ``recent = 0`` is a linear cache of ``length`` slots (module docstring)."""
    if recent == 0:
        return np.arange(length)
    pos = np.full(sink + recent, -1, dtype=np.int64)
    pos[:min(sink, length)] = np.arange(min(sink, length))
    ring = np.arange(recent)
    last = sink + ring + ((length - 1 - sink - ring) // recent) * recent
    pos[sink:] = np.where(length - 1 >= sink + ring, last, -1)
    return pos


def _softmax(machine: Machine, ins: Instruction, where: str) -> None:
    from golden.attention_fixed import AttentionFixedConfig, attention_weights, position_mask

    unit, desc = machine.arch.units.softmax, machine.kv[ins["kv"]]
    ea = machine.accumulator.shape[1]
    es = machine.scratchpad.shape[1]
    slots = slot_positions(desc["sink"], desc["recent"], desc["length"])
    padded = -(-slots.size // ea) * ea
    rows, cols, length = ins["rows"], ins["cols"], desc["length"]
    chunk = cols - padded
    if chunk < 1 or rows % chunk:
        raise ProgramError(f"{where}: cols={cols} keys leave a chunk of {chunk} after the "
                           f"cache's {padded} key slots; rows={rows} must be a multiple of it")
    keys = np.concatenate([slots, np.full(padded - slots.size, -1), length + np.arange(chunk)])
    queries = length + np.arange(rows) % chunk
    window = (desc["sink"], desc["recent"]) if desc["recent"] else ()
    mask = position_mask(queries, keys, *window)
    j = np.arange(cols)
    x = machine.accumulator[ins["src"] + (j // ea)[None, :] * rows + np.arange(rows)[:, None],
                            (j % ea)[None, :]]
    cfg = AttentionFixedConfig(softmax=unit.golden_config(), weight_bits=unit.weight_bits)
    w = attention_weights(x, mask, cfg)
    machine.scratchpad[ins["dst"] + (j // es)[None, :] * rows + np.arange(rows)[:, None],
                       (j % es)[None, :]] = w
    machine.accumulator[ins["arg"]:ins["arg"] + rows, 0] = w.sum(axis=1)
    blocks = -(-cols // ea)
    machine.counts["accumulator_row_reads"] += rows * blocks
    machine.counts["scratchpad_row_writes"] += rows * -(-cols // es)
    machine.counts["accumulator_row_writes"] += rows
    machine.counts["softmax_rows"] += rows * blocks


def _kv_cache(machine: Machine, mode: str, ins: Instruction) -> None:
    desc = machine.kv[ins["kv"]]
    if mode == "reset":
        desc.update(sink=ins["src"], recent=ins["dst"], length=0)
    else:
        desc["length"] += ins["rows"]


def run_unit(machine: Machine, ins: Instruction, where: str) -> None:
    """Execute the (checked) unit command ``ins`` on ``machine`` (module docstring);
    ``ProgramError`` (naming ``where``) for what only running can tell."""
    unit = UNIT_NAMES[ins["unit"]]
    mode = UNIT_MODES[unit][ins["mode"]]
    if unit == "kv_cache":
        _kv_cache(machine, mode, ins)
        return
    if unit == "softmax":
        _softmax(machine, ins, where)
        return
    x = machine.accumulator[ins["src"]:ins["src"] + ins["rows"], :ins["cols"]].copy()
    machine.counts["accumulator_row_reads"] += ins["rows"]
    machine.counts[f"{unit}_rows"] += ins["rows"]
    if unit == "requant":
        _requant(machine, mode, ins, x)
    else:
        _normalizer(machine, ins, x)
