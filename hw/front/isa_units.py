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
  2**(A - 1)`` of the row's first element ``x0``: the ``A - 1``-bit slices of ``x0``;
* ``rows``: each row its own shift over ``count`` tiles of ``rows`` rows (row ``r`` of tile
  ``t`` at ``src + t rows + r``): ``s_r = max(bitlen(max |x_r|) - (A - 1), 0)``, scratchpad
  ``saturate(round_shift_right(x, s_r), A)`` at ``dst + t rows + r``, ``s_r`` into element 0 of
  accumulator row ``arg + r`` (:func:`golden.svdquant_fixed.requantize_rows`); ``absmax`` and
  ``pow2`` are left at the last row's.

``dequant`` (:mod:`hw.ir.units.dequant`; :func:`golden.group_dequant.accumulate_groups` over
terms given one command each, in two passes), on ``rows x cols`` outputs:

* ``clear``: zero the accumulators, no exponent yet; with ``shift`` bit 0 the per-row exponent
  offsets are element 0 of accumulator rows ``arg + r`` (else 0);
* ``exponent`` / ``term`` of one term: dot ``acc[arg + r][c]``, scale product
  ``float32(acc[src + r][count]) * float32(acc[dst][c])`` (bit patterns of >= 0 scales)
  encoded as ``(mant, exp)``, ``exp +=`` the row's offset when ``shift`` bit 0 is set; the term
  is dead when ``mant = 0`` or, with ``shift`` bit 1, when its dot is 0. ``exponent`` raises
  the output's ``emax`` to a live term's ``exp``; ``term`` adds
  ``round_shift_right((dot mant) << guard, min(emax - exp, term_bits + 1))`` (every term's
  exponent pass must come first);
* ``output``: ``fl32(acc 2**(emax - guard))`` (0 without a live term) as float32 bits into
  accumulator rows ``dst + r``.

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

``softmax max`` and ``scaled``: a head over key blocks (its keys in DRAM, not a cache), two
passes; keys ``j < cols`` of query ``i`` laid out as for ``weights``, all visible, or with
``shift`` bit 1 (*causal*: the block of a query tile's own keys, query heads one after the
other) key ``j`` of row ``i`` only when ``j <= i mod cols``. ``max`` folds each row's largest
visible key into element 0 of accumulator row ``arg + i`` (``shift`` bit 0: the first block,
replace it); ``scaled``: ``w = weights_below_max(x, that max)``
(:func:`golden.attention_fixed.weights_below_max`; 0 for a hidden key) into the scratchpad as
``weights`` writes them, the row sum to element 1 of row ``arg + i``.

``quantizer`` (:mod:`hw.ir.units.quantizer`): ``rows`` rows of ``cols`` float32 values ``x``
(bit patterns in accumulator elements), element ``j`` of row ``i`` at accumulator row
``src + (j // Ea) rows + i``, element ``j mod Ea`` (as the softmax's keys); codes to
scratchpad row ``dst + (j // Es) rows + i``, element ``j mod Es`` (operand values):

* ``groups``: per group of the unit's ``group`` elements (``cols`` a multiple of it),
  ``quantize_int4(x, group, signed=shift & 1, scale_dtype="float32")``
  (:func:`golden.svdquant_ops.quantize_int4`: codes -8..7, or 0..15); the scale (float32
  bits) of the row's group ``g`` to accumulator row ``arg + ((count + g) // Ea) rows + i``,
  element ``(count + g) mod Ea`` (``count``: the element of the first scale, so a K-chunk's
  scales of global group ``G`` land with ``count = G mod Ea``, ``arg = base + (G // Ea)
  rows``); the other elements of those rows are left as they are;
* ``rows``: one scale per row, ``quantize_symmetric(x, A)``
  (:func:`golden.svdquant_fixed.quantize_symmetric`: codes ``-2**(A-1) .. 2**(A-1) - 1``),
  the scale to element 0 of accumulator row ``arg + i`` (the others left).

Out of contract (golden rejects it, the hardware defines it): with unsigned groups, a negative
``x`` gets the code 0 and its magnitude counts towards the scale, as the hardware does; an
infinity or NaN pattern is a :class:`ProgramError` (the hardware reads it as a finite number).

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


def _requant_rows(machine: Machine, ins: Instruction) -> None:
    from golden.svdquant_fixed import requantize_rows

    a_bits, rows, cols, tiles = machine.arch.types[0].bits, ins["rows"], ins["cols"], \
        ins["count"]
    x = np.concatenate([machine.accumulator[ins["src"] + t * rows:ins["src"] + (t + 1) * rows,
                                            :cols] for t in range(tiles)], axis=1)
    shift, u = requantize_rows(x, a_bits)
    for t in range(tiles):
        start = ins["dst"] + t * rows
        machine.scratchpad[start:start + rows, :cols] = u[:, t * cols:(t + 1) * cols]
    machine.accumulator[ins["arg"]:ins["arg"] + rows, 0] = shift
    top = int(np.abs(x[-1]).max(initial=0))         # the register keeps the last row's max
    machine.unit_state["absmax"] = top
    machine.unit_state["pow2"] = max(top.bit_length() - (a_bits - 1), 0)
    machine.counts["accumulator_row_reads"] += rows * (tiles - 1)
    machine.counts["scratchpad_row_writes"] += rows * tiles
    machine.counts["accumulator_row_writes"] += rows


def _requant(machine: Machine, mode: str, ins: Instruction, x: np.ndarray) -> None:
    a_bits, c_bits = machine.arch.types[0].bits, machine.arch.types[2].bits
    state = machine.unit_state
    if mode == "rows":
        _requant_rows(machine, ins)
        return
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


def _check_normalizer_inputs(where: str, x: np.ndarray, shift: int, den: np.ndarray,
                             unit) -> None:
    """ProgramError unless every numerator ``x << shift`` fits the datapath's signed
    ``NUM_BITS`` and every denominator its unsigned ``DEN_IN_BITS`` (what a hardware register
    would truncate)."""
    if den.size and (den.min() < 0 or den.max() >= 1 << unit.DEN_IN_BITS):
        bad = int(den.min()) if den.min() < 0 else int(den.max())
        raise ProgramError(f"{where}: denominator {bad} is outside the normalizer's "
                           f"0..2**{unit.DEN_IN_BITS} - 1")
    lim = 1 << (unit.NUM_BITS - 1)
    lo, hi = -(lim >> shift), ((lim - 1) >> shift) + 1      # lo <= x < hi: x << shift fits
    if x.size and (x.min() < lo or x.max() >= hi):
        bad = int(x.min()) if x.min() < lo else int(x.max())
        raise ProgramError(f"{where}: numerator {bad} << {shift} exceeds the normalizer's "
                           f"{unit.NUM_BITS}-bit input")


def _normalizer(machine: Machine, ins: Instruction, x: np.ndarray, where: str) -> None:
    from golden.linear_attention_fixed import normalize

    unit = machine.arch.units.normalizer
    step = machine.arch.types[0].bits - 1
    parts = machine.accumulator[ins["arg"]:ins["arg"] + ins["rows"], :ins["count"]]
    den = (parts << (step * np.arange(ins["count"]))).sum(axis=1, keepdims=True)
    machine.counts["accumulator_row_reads"] += ins["rows"]
    shift = _shift(machine, ins)
    _check_normalizer_inputs(where, x, shift, den, unit)
    num = x << min(shift, unit.NUM_BITS)
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


def _keys(machine: Machine, ins: Instruction, unit: str = "softmax") -> np.ndarray:
    """The ``rows x cols`` keys of a softmax (or ``unit``) command: key ``j`` of query ``i``
    at accumulator row ``src + (j // Ea) rows + i``, element ``j mod Ea``."""
    ea, rows, cols = machine.accumulator.shape[1], ins["rows"], ins["cols"]
    j, i = np.arange(cols), np.arange(rows)[:, None]
    machine.counts["accumulator_row_reads"] += rows * -(-cols // ea)
    machine.unit_rows[unit] += rows * -(-cols // ea)
    return machine.accumulator[ins["src"] + (j // ea)[None, :] * rows + i, (j % ea)[None, :]]


def _put_weights(machine: Machine, ins: Instruction, w: np.ndarray, sum_element: int) -> None:
    """Weight ``j`` of query ``i`` to scratchpad row ``dst + (j // Es) rows + i``, element
    ``j mod Es``; each row's sum to element ``sum_element`` of accumulator row ``arg + i``."""
    es, rows, cols = machine.scratchpad.shape[1], ins["rows"], ins["cols"]
    j, i = np.arange(cols), np.arange(rows)[:, None]
    machine.scratchpad[ins["dst"] + (j // es)[None, :] * rows + i, (j % es)[None, :]] = w
    machine.accumulator[ins["arg"]:ins["arg"] + rows, sum_element] = w.sum(axis=1)
    machine.counts["scratchpad_row_writes"] += rows * -(-cols // es)
    machine.counts["accumulator_row_writes"] += rows


def _softmax(machine: Machine, ins: Instruction, where: str) -> None:
    from golden.attention_fixed import attention_weights, position_mask

    desc = machine.kv[ins["kv"]]
    ea = machine.accumulator.shape[1]
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
    cfg = machine.arch.units.softmax.attention_config()
    _put_weights(machine, ins, attention_weights(_keys(machine, ins), mask, cfg), 0)


def _softmax_blocks(machine: Machine, ins: Instruction, mode: str, where: str) -> None:
    """``softmax max`` / ``scaled``: every key ``j < cols`` visible, or with ``shift`` bit 1
    (causal) key ``j`` of row ``i`` iff ``j <= i mod cols``."""
    from golden.attention_fixed import weights_below_max

    rows, cols = ins["rows"], ins["cols"]
    x = _keys(machine, ins)
    visible = np.ones(x.shape, bool)
    if ins["shift"] & 2:
        visible = np.arange(cols)[None, :] <= (np.arange(rows) % cols)[:, None]
    held = machine.accumulator[ins["arg"]:ins["arg"] + rows, 0]
    if mode == "max":
        top = np.where(visible, x, np.iinfo(np.int64).min).max(axis=1)
        machine.accumulator[ins["arg"]:ins["arg"] + rows, 0] = \
            top if ins["shift"] & 1 else np.maximum(held, top)
        machine.counts["accumulator_row_writes"] += rows
        return
    if np.any(visible & (x > held[:, None])):
        raise ProgramError(f"{where}: a logit exceeds its row's maximum in rows "
                           f"arg={ins['arg']}.. (run softmax max over every key block first)")
    cfg = machine.arch.units.softmax.attention_config()
    w = weights_below_max(np.where(visible, x, held[:, None]), held[:, None], cfg)
    _put_weights(machine, ins, np.where(visible, w, 0), 1)


def _quantizer(machine: Machine, mode: str, ins: Instruction, where: str) -> None:
    """``quantizer groups`` / ``rows`` (module docstring)."""
    from golden.svdquant_fixed import quantize_symmetric
    from golden.svdquant_ops import quantize_int4

    ea, es = machine.accumulator.shape[1], machine.scratchpad.shape[1]
    rows, cols = ins["rows"], ins["cols"]
    x = _keys(machine, ins, "quantizer").astype(np.int32).view(np.float32)
    if not np.all(np.isfinite(x)):
        i, j = np.argwhere(~np.isfinite(x))[0]
        raise ProgramError(f"{where}: x of row {i}, element {j} is {x[i, j]} (an infinity or "
                           "NaN pattern): the quantizer takes finite float32 values")
    j, i = np.arange(cols), np.arange(rows)[:, None]
    if mode == "rows":
        codes, scales = quantize_symmetric(x, machine.arch.types[0].bits)
        rows_of, elems = ins["arg"] + np.arange(rows), np.zeros(rows, np.int64)
    else:
        group = machine.arch.units.quantizer.group
        signed = bool(ins["shift"] & 1)
        codes, scales = quantize_int4(x if signed else np.abs(x), group, signed, "float32")
        if not signed:
            codes = np.where(x < 0, 0, codes)       # the hardware's clamp of x / s < 0
        at = ins["count"] + np.arange(cols // group)
        rows_of = ins["arg"] + (at // ea)[None, :] * rows + i
        elems = np.broadcast_to(at % ea, rows_of.shape)
    machine.scratchpad[ins["dst"] + (j // es)[None, :] * rows + i, (j % es)[None, :]] = codes
    bits = np.asarray(scales, np.float32).view(np.int32).astype(np.int64)
    machine.accumulator[rows_of.reshape(bits.shape), elems.reshape(bits.shape)] = bits
    machine.counts["scratchpad_row_writes"] += rows * -(-cols // es)
    machine.counts["accumulator_row_writes"] += bits.size


def _kv_cache(machine: Machine, mode: str, ins: Instruction) -> None:
    desc = machine.kv[ins["kv"]]
    if mode == "reset":
        desc.update(sink=ins["src"], recent=ins["dst"], length=0)
    else:
        desc["length"] += ins["rows"]


def _floats(bits: np.ndarray) -> np.ndarray:
    """float64 values of float32 bit patterns held as (signed) int32 elements."""
    return np.asarray(bits, np.int64).astype(np.int32).view(np.float32).astype(np.float64)


def _dequant_term(machine: Machine, ins: Instruction, where: str):
    """(dot, mant, exp, live) of one term on the cleared outputs (module docstring)."""
    from golden.group_dequant import encode_products

    state, spec = machine.dequant, machine.arch.units.dequant.golden_spec()
    rows, cols = ins["rows"], ins["cols"]
    if state is None or state["acc"].shape != (rows, cols):
        have = None if state is None else state["acc"].shape
        raise ProgramError(f"{where}: a {rows}x{cols} dequant term, but the unit was cleared "
                           f"for {have}")
    acc = machine.accumulator
    dot = acc[ins["arg"]:ins["arg"] + rows, :cols]
    half = 1 << (spec.dot_bits - 1)
    if dot.size and (dot.min() < -half or dot.max() >= half):
        raise ProgramError(f"{where}: a dot of {int(np.abs(dot).max())} exceeds the unit's "
                           f"{spec.dot_bits}-bit dot register")
    scales = _floats(acc[ins["src"]:ins["src"] + rows, ins["count"]])[:, None] * \
        _floats(acc[ins["dst"], :cols])[None, :]
    if np.any(scales < 0) or not np.all(np.isfinite(scales)):
        raise ProgramError(f"{where}: scales must be finite and >= 0")
    mant, exp = encode_products(scales, spec)
    if ins["shift"] & 1:
        exp = exp + state["offsets"][:, None]
    live = (mant > 0) & ((dot != 0) if ins["shift"] & 2 else True)
    machine.counts["accumulator_row_reads"] += 2 * rows + 1
    return dot, mant, exp, live


def _dequant(machine: Machine, mode: str, ins: Instruction, where: str) -> None:
    from golden.fixed_point import round_shift_right

    spec = machine.arch.units.dequant.golden_spec()
    rows, cols = ins["rows"], ins["cols"]
    if mode == "clear":
        offsets = (machine.accumulator[ins["arg"]:ins["arg"] + rows, 0].copy()
                   if ins["shift"] & 1 else np.zeros(rows, np.int64))
        machine.dequant = {"acc": np.zeros((rows, cols), np.int64), "offsets": offsets,
                           "emax": np.zeros((rows, cols), np.int64),
                           "live": np.zeros((rows, cols), bool)}
        return
    state = machine.dequant
    if mode == "output":
        if state is None or state["acc"].shape != (rows, cols):
            raise ProgramError(f"{where}: output of {rows}x{cols}, but the unit holds "
                               f"{None if state is None else state['acc'].shape}")
        y = np.where(state["live"], np.ldexp(state["acc"].astype(np.float64),
                                              state["emax"] - spec.guard_bits), 0.0)
        bits = y.astype(np.float32).view(np.int32).astype(np.int64)
        machine.accumulator[ins["dst"]:ins["dst"] + rows, :cols] = bits
        machine.counts["accumulator_row_writes"] += rows
        return
    dot, mant, exp, live = _dequant_term(machine, ins, where)
    if mode == "exponent":
        state["emax"] = np.where(live & (~state["live"] | (exp > state["emax"])), exp,
                                 state["emax"])
        state["live"] |= live
        return
    if np.any(live & (~state["live"] | (exp > state["emax"]))):
        raise ProgramError(f"{where}: a dequant term before its exponent pass")
    shift = np.minimum(np.where(live, state["emax"] - exp, 0), spec.term_bits + 1)
    prod = (dot * mant) << spec.guard_bits
    for s in np.unique(shift):
        sel = live & (shift == s)
        state["acc"][sel] += round_shift_right(prod[sel], int(s))
    lim = 1 << (spec.acc_bits - 1)
    if state["acc"].size and (state["acc"].min() < -lim or state["acc"].max() >= lim):
        raise ProgramError(f"{where}: the dequant accumulator leaves its {spec.acc_bits} bits")


def run_unit(machine: Machine, ins: Instruction, where: str) -> None:
    """Execute the (checked) unit command ``ins`` on ``machine`` (module docstring);
    ``ProgramError`` (naming ``where``) for what only running can tell."""
    unit = UNIT_NAMES[ins["unit"]]
    mode = UNIT_MODES[unit][ins["mode"]]
    if unit == "kv_cache":
        _kv_cache(machine, mode, ins)
        return
    if unit == "softmax":
        if mode == "weights":
            _softmax(machine, ins, where)
        else:
            _softmax_blocks(machine, ins, mode, where)
        return
    if unit == "quantizer":
        _quantizer(machine, mode, ins, where)
        return
    if unit == "dequant":
        machine.unit_rows["dequant"] += 0 if mode == "clear" else ins["rows"]
        _dequant(machine, mode, ins, where)
        return
    x = machine.accumulator[ins["src"]:ins["src"] + ins["rows"], :ins["cols"]].copy()
    machine.counts["accumulator_row_reads"] += ins["rows"]
    machine.unit_rows[unit] += ins["rows"]
    if unit == "requant":
        _requant(machine, mode, ins, x)
    else:
        _normalizer(machine, ins, x, where)
