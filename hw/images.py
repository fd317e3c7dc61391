"""Host-side memory images of an :class:`~hw.plan.ArrayPlan`: what to load, where results are.

Bank ``b`` word ``w`` of an input holds the element its root FU streams at that point: entry
``n`` (the tile coordinates of the dims the tensor depends on) and cycle ``t0 + w`` (or ``t0``
for a stationary stream). Elements outside the tensor (halo of the padded problem) read as 0.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from .plan import ArrayPlan, Bank

__all__ = ["HostMap", "host_map"]


@dataclass(frozen=True)
class HostMap:
    """Bank layout behind the host port: ``host_addr = bank << word_bits | word``."""

    plan: ArrayPlan
    word_bits: int
    data_bits: int
    #: per output element (true shape, row-major): (bank index, word)
    out_locations: np.ndarray

    def address(self, bank: int, word: int) -> int:
        return (bank << self.word_bits) | word

    def input_writes(self, operands: dict[str, np.ndarray]) -> list[tuple[int, int]]:
        """``(host_addr, raw word)`` writes that load both inputs (validated, range-checked)."""
        plan = self.plan
        writes = []
        for b, bank in enumerate(plan.banks):
            x = _tensor(plan, bank.tensor)
            if x.role != "input":
                continue
            data = _checked(plan, x, operands)
            mask = (1 << x.dtype.bits) - 1
            for word, elem in _bank_elements(plan, bank):
                value = int(data[elem]) if elem is not None else 0
                writes.append((self.address(b, word), value & mask))
        return writes

    def output_reads(self) -> list[int]:
        """Host addresses to read, one per output element in row-major order."""
        return [self.address(int(b), int(w)) for b, w in self.out_locations.reshape(-1, 2)]

    def decode_output(self, words: list[int]) -> np.ndarray:
        """Raw words from :meth:`output_reads` -> the output tensor (signed per its type)."""
        out = self.plan.spec.op.output
        bits = out.dtype.bits
        vals = np.array([int(w) & ((1 << bits) - 1) for w in words], dtype=np.int64)
        if out.dtype.signed:
            vals = np.where(vals >> (bits - 1), vals - (1 << bits), vals)
        return vals.reshape(self.out_locations.shape[:-1])


def _tensor(plan: ArrayPlan, name: str):
    return next(t for t in plan.spec.op.tensors if t.name == name)


def _checked(plan: ArrayPlan, x, operands: dict[str, np.ndarray]) -> np.ndarray:
    if x.name not in operands:
        raise ValueError(f"operand {x.name!r} missing (given: {', '.join(operands) or 'none'})")
    data = np.asarray(operands[x.name])
    shape = plan.spec.op.tensor_extent(x, plan.spec.op.extents)
    if data.shape != shape:
        raise ValueError(f"operand {x.name} must have shape {shape}, got {data.shape}")
    if data.dtype.kind not in "iub":
        raise ValueError(f"operand {x.name} must hold integers, got dtype {data.dtype}")
    if data.size and (data.min() < x.dtype.min or data.max() > x.dtype.max):
        bad = int(data.min()) if data.min() < x.dtype.min else int(data.max())
        raise ValueError(f"operand {x.name} holds {bad}, outside {x.dtype} "
                         f"[{x.dtype.min}, {x.dtype.max}]")
    return data


def _entries(plan: ArrayPlan, bank: Bank):
    """(entry index, tile origin per dim) for every distinct tile of the bank's tensor."""
    dep = [d for d, s in enumerate(bank.strides) if s]
    for coords in itertools.product(*(range(plan.n_tiles_per_dim[d]) for d in dep)):
        origin = [0] * len(plan.tile)
        entry = 0
        for d, n in zip(dep, coords, strict=True):
            origin[d] = n * plan.tile[d]
            entry += n * bank.strides[d]
        yield entry, origin


def _element(x, iteration, shape):
    idx = tuple(off + sum(c * i for c, i in zip(row, iteration, strict=True))
                for row, off in zip(x.access, x.offset, strict=True))
    return idx if all(0 <= i < n for i, n in zip(idx, shape, strict=True)) else None


def _bank_elements(plan: ArrayPlan, bank: Bank, times=None):
    """(word, element index or None) for every word of ``bank``."""
    x = _tensor(plan, bank.tensor)
    shape = plan.spec.op.tensor_extent(x, plan.spec.op.extents)
    offsets = times if times is not None else range(bank.words_per_tile)
    intra = [(w, plan.iteration(bank.root, bank.t0 + w)) for w in offsets]
    for entry, origin in _entries(plan, bank):
        base = entry * bank.words_per_tile
        for w, it in intra:
            full = tuple(o + i for o, i in zip(origin, it, strict=True))
            yield base + w, _element(x, full, shape)


def host_map(plan: ArrayPlan) -> HostMap:
    """The host view of ``plan``; checks that every output element has exactly one home."""
    op = plan.spec.op
    word_bits = max(1, max(b.depth for b in plan.banks).bit_length())
    data_bits = max(t.dtype.bits for t in op.tensors)
    out = op.output
    shape = op.tensor_extent(out, op.extents)
    loc = np.full((*shape, 2), -1, dtype=np.int64)
    for b, bank in enumerate(plan.banks):
        if bank.tensor != out.name:
            continue
        t_write = [w.start - (bank.window.start) for w in plan.output.write[bank.root]]
        times = sorted({t for w, s in zip(plan.output.write[bank.root], t_write, strict=True)
                        for t in range(s, s + w.length)})
        if not bank.stream:
            times = [0]
        for word, elem in _bank_elements(plan, bank, times):
            if elem is None:
                continue
            if loc[elem][0] >= 0 and tuple(loc[elem]) != (b, word):
                raise ValueError(f"generator error: output element {elem} is written to two "
                                 f"places (bank {loc[elem][0]} and bank {b})")
            loc[elem] = (b, word)
    if (loc[..., 0] < 0).any():
        missing = tuple(int(i) for i in np.argwhere(loc[..., 0] < 0)[0])
        raise ValueError(f"generator error: output element {missing} is never written")
    return HostMap(plan, word_bits, data_bits, loc)
