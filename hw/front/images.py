"""Host-side memory images of an :class:`~hw.plan.ArrayPlan`: what to load, where results are.

Word ``w`` of a stream's entry ``n`` holds the element its root FU reads at that point: entry
``n`` is the tile coordinates of the dims the tensor depends on, ``w`` the cycle ``t0 + w``
(``t0`` for a stationary stream). Elements outside the tensor (halo of the padded problem)
read as 0. A stream lives at an offset inside its (possibly shared) bank.

Layer: hw.front, the planning layer (plain Python, no Amaranth).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from .plan import ArrayPlan, Stream

__all__ = ["HostMap", "host_map"]


@dataclass(frozen=True)
class HostMap:
    """Bank layout behind the host port: ``host_addr = bank << word_bits | word``."""

    plan: ArrayPlan
    word_bits: int
    data_bits: int
    #: per output element (true shape, row-major): (bank index, word in the bank)
    out_locations: np.ndarray
    #: plan bank -> physical bank behind the port (identity unless fused with other plans)
    bank_index: tuple[int, ...] = ()

    def address(self, stream: Stream, word: int) -> int:
        """Host address of ``word`` of ``stream`` (its bank, after its offset)."""
        return (self.bank_index[stream.bank] << self.word_bits) | (stream.offset + word)

    def input_writes(self, operands: dict[str, np.ndarray]) -> list[tuple[int, int]]:
        """``(host_addr, raw word)`` writes that load both inputs (validated, range-checked)."""
        plan = self.plan
        writes = []
        for stream in plan.streams:
            x = _tensor(plan, stream.tensor)
            if x.role != "input":
                continue
            data = _checked(plan, x, operands)
            mask = (1 << x.dtype.bits) - 1
            for word, elem in _stream_elements(plan, stream):
                value = int(data[elem]) if elem is not None else 0
                writes.append((self.address(stream, word), value & mask))
        return writes

    def output_reads(self) -> list[int]:
        """Host addresses to read, one per output element in row-major order."""
        return [(int(b) << self.word_bits) | int(w) for b, w in self.out_locations.reshape(-1, 2)]

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


def _entries(plan: ArrayPlan, stream: Stream):
    """(entry index, tile origin per dim) for every distinct tile of the stream's tensor."""
    dep = [d for d, s in enumerate(stream.strides) if s]
    for coords in itertools.product(*(range(plan.n_tiles_per_dim[d]) for d in dep)):
        origin = [0] * len(plan.tile)
        entry = 0
        for d, n in zip(dep, coords, strict=True):
            origin[d] = n * plan.tile[d]
            entry += n * stream.strides[d]
        yield entry, origin


def _element(x, iteration, shape):
    idx = tuple(off + sum(c * i for c, i in zip(row, iteration, strict=True))
                for row, off in zip(x.access, x.offset, strict=True))
    return idx if all(0 <= i < n for i, n in zip(idx, shape, strict=True)) else None


def _stream_elements(plan: ArrayPlan, stream: Stream, times=None):
    """(word, element index or None) for every word of ``stream`` (``times``: these only)."""
    x = _tensor(plan, stream.tensor)
    shape = plan.spec.op.tensor_extent(x, plan.spec.op.extents)
    offsets = times if times is not None else range(stream.words_per_tile)
    intra = [(w, plan.iteration(stream.root, stream.t0 + w)) for w in offsets]
    for entry, origin in _entries(plan, stream):
        base = entry * stream.words_per_tile
        for w, it in intra:
            full = tuple(o + i for o, i in zip(origin, it, strict=True))
            yield base + w, _element(x, full, shape)


def host_map(plan: ArrayPlan, bank_index: dict[int, int] | None = None,
             word_bits: int | None = None) -> HostMap:
    """The host view of ``plan``; checks that every output element has exactly one home.

    ``bank_index`` maps the plan's banks to physical banks and ``word_bits`` sets the word
    field (both for a plan fused with others into one array).
    """
    op = plan.spec.op
    index = tuple(bank_index[b] if bank_index else b for b in range(len(plan.banks)))
    if word_bits is None:
        word_bits = max(1, (max(b.depth for b in plan.banks) - 1).bit_length())
    data_bits = max(t.dtype.bits for t in op.tensors)
    out = op.output
    shape = op.tensor_extent(out, op.extents)
    loc = np.full((*shape, 2), -1, dtype=np.int64)
    for stream in plan.streams:
        if stream.tensor != out.name:
            continue
        writes = plan.output.write[stream.root]
        times = sorted({w.start - stream.window.start + k for w in writes
                        for k in range(w.length)})
        if not stream.stream:
            times = [0]
        for word, elem in _stream_elements(plan, stream, times):
            if elem is None:
                continue
            here = (index[stream.bank], stream.offset + word)
            if loc[elem][0] >= 0 and tuple(loc[elem]) != here:
                raise ValueError(f"generator error: output element {elem} is written to two "
                                 f"places (bank {loc[elem][0]} and bank {index[stream.bank]})")
            loc[elem] = here
    if (loc[..., 0] < 0).any():
        missing = tuple(int(i) for i in np.argwhere(loc[..., 0] < 0)[0])
        raise ValueError(f"generator error: output element {missing} is never written")
    return HostMap(plan, word_bits, data_bits, loc, index)
