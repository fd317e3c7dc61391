"""A retrieval head at a long context: the keys and values stay in DRAM and stream through
the accelerator in blocks, twice (a row max first, then the weights against it:
:func:`golden.attention_fixed.weights_below_max`), so the context is bounded by the DRAM, not
the scratchpad. A decode step is one query tile of one token; a prefill chunk is a sequence
of query tiles of ``c`` tokens (flash-attention's outer loop), each streaming every key up
to its own. The outputs equal :func:`golden.attention_fixed.attention_head_int`'s with the
causal mask (all integer sums: exact in any block order).

With ``G`` query heads and a tile of ``c`` tokens (``R = G c`` rows, the heads one after the
other) whose last query sees ``keys`` keys, and the head's keys and values ``k``, ``v``
int8 in DRAM, per key block of ``KB`` keys (on a dataflow with A rows over i, B rows over k,
C rows over i)::

    pass 1   logits S = Q K_b^T (R x KB, blocks of E keys in accumulator rows), requant
             wide (the logit multiplier), softmax max: the running row max (replaced by the
             first block's)
    pass 2   logits again, softmax scaled: int8 weights P against the max;
             O += P V_b,  den += P 1 (a column of ones: the weights' sum)
    then     normalizer: out = normalize(O, den), mvout

A tile of ``c > 1`` tokens takes the keys before it in blocks of ``KB`` and its own ``c``
keys as one last block under the causal mask (``softmax max`` / ``scaled`` with ``shift``
bit 1: key ``j`` of row ``r`` visible iff ``j <= r mod c``); ``c <= KB``. A non-causal tile
(``causal=False``: FLUX.1's joint attention, Sana's cross-attention) has every query see all
``keys`` keys, in blocks of ``KB`` with no causal block (any ``c``, even more than the keys):
golden's head with no mask.

Layer: hw.front, the planning layer (plain Python, no Amaranth).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .arch import ArchSpec
from .isa import Instruction, check_program
from .isa_machine import Machine, pack, unpack
from .kernel_chain import blocks, chain_dataflow, unit_command
from .kernel_runs import ALIGN, KernelRun
from .spec_model import SpecError

__all__ = ["LongAttention", "default_tile", "largest_block", "long_attention_program",
           "query_tiles", "query_tiling", "run_long_decode", "run_long_prefill",
           "tile_addresses"]

_CAUSAL = 2             #: the softmax max / scaled commands' causal bit of ``shift``
_KEYS_PER_TOKEN = 4     #: a prefill tile's key block holds at least this many keys a token


@dataclass(frozen=True)
class LongAttention:
    """One query tile: ``g`` query heads of ``c`` tokens (tokens ``first .. first + c - 1`` of
    the ``tokens`` in DRAM), the last of which sees ``keys`` keys; keys of ``d``, values of
    ``dv``, the logit multiplier and shift, ``kb`` keys a block; DRAM byte addresses of q
    (g x tokens x d), k (keys x d, at least), v (keys x dv), one constant byte 1 and the
    output (g x tokens x dv, C elements); ``causal=False``: every query sees all ``keys``."""

    g: int
    c: int
    keys: int
    d: int
    dv: int
    mult: int
    shift: int
    kb: int
    tokens: int = 1
    first: int = 0
    q: int = 0
    k: int = 0
    v: int = 0
    ones: int = 0
    out: int = 0
    causal: bool = True

    def __post_init__(self) -> None:
        for name in ("g", "c", "keys", "d", "dv", "kb", "tokens"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        if (self.causal and self.c > self.keys) or self.first + self.c > self.tokens:
            raise ValueError(f"a tile of c={self.c} tokens from token {self.first} of "
                             f"{self.tokens} with {self.keys} keys is out of range")
        if not isinstance(self.causal, bool):
            raise ValueError(f"causal must be a bool, got {self.causal!r}")
        if self.causal and 1 < self.c and self.kb < self.c:
            raise ValueError(f"a tile's own c={self.c} keys are one block: kb={self.kb} must "
                             "be at least c")

    @property
    def rows(self) -> int:
        return self.g * self.c


def _layout(e: int, op: LongAttention) -> dict[str, int]:
    nd, nv, nb, r = -(-op.d // e), -(-op.dv // e), -(-op.kb // e), op.rows
    sp = {"Q": 0, "KT": nd * r}
    sp["P"] = sp["KT"] + nb * op.d
    sp["V"] = sp["P"] + nb * r
    sp["ONES"] = sp["V"] + nv * op.kb
    sp["end"] = sp["ONES"] + op.kb
    acc = {"S": 0, "MAX": nb * r}
    acc["DEN"] = acc["MAX"] + r
    acc["O"] = acc["DEN"] + r
    acc["end"] = acc["O"] + nv * r
    return {**{f"sp_{k}": v for k, v in sp.items()}, **{f"acc_{k}": v for k, v in acc.items()}}


def _fits(arch: ArchSpec, e: int, op: LongAttention) -> bool:
    lay = _layout(e, op)
    return lay["sp_end"] <= arch.scratchpad.rows and lay["acc_end"] <= arch.accumulator.rows


def largest_block(arch: ArchSpec, g: int, d: int, dv: int, limit: int = 4095,
                  c: int = 1) -> int:
    """The most keys a block may hold (a multiple of the array edge, at most ``limit``) for
    tiles of ``g`` heads x ``c`` tokens in the memories of ``arch``; 0 if not even one edge of
    keys fits."""
    _, e = chain_dataflow(arch, None, "long-context attention")
    best = 0
    for kb in range(-(-c // e) * e, limit + 1, e):
        if not _fits(arch, e, LongAttention(g, c, c, d, dv, 1, 0, kb, c)):
            break
        best = kb
    return best


def default_tile(arch: ArchSpec, g: int, d: int, dv: int) -> int:
    """The tokens of a prefill query tile: the most whose key block can hold at least
    ``_KEYS_PER_TOKEN`` keys a tile token (larger tiles read the keys fewer times, larger
    blocks spend fewer fixed costs a key; on ``lego_fused`` with 4 heads of 128: 17 tokens
    and blocks of 80, 32.1k cycles a token at 4k keys against 32.2k-32.8k for 14-16 tokens
    and 33.2k for the largest tile, 21); 0 if a tile of one token does not fit."""
    best = 0
    for c in range(1, 4096):
        kb = largest_block(arch, g, d, dv, c=c)
        if kb == 0:
            break
        if kb >= _KEYS_PER_TOKEN * c or best == 0:
            best = c
    return best


def query_tiling(arch: ArchSpec, g: int, d: int, dv: int, queries: int) -> tuple[int, int]:
    """(tokens a query tile, keys a block) for a step of ``queries`` queries of ``g`` heads: a
    decode (one query) one token over blocks of the largest ``kb``; a prefill chunk tiles of
    :func:`default_tile` tokens (at most ``queries``) over the largest blocks for them. Block
    0: no tile fits the memories."""
    if queries == 1:
        return 1, largest_block(arch, g, d, dv)
    tile = min(default_tile(arch, g, d, dv), queries)
    return tile, largest_block(arch, g, d, dv, c=tile) if tile else 0


def _logits(op: LongAttention, lay: dict, e: int, k0: int, kn: int) -> list[Instruction]:
    """K^T of keys ``k0 .. k0 + kn - 1`` moved in and their requantized logits."""
    prog = []
    sub = blocks(kn, e)
    for b, (c0, cn) in enumerate(sub):
        prog.append(Instruction("mvin", (("dram", op.k + (k0 + c0) * op.d), ("stride", op.d),
                                         ("sp", lay["sp_KT"] + b * op.d), ("rows", op.d),
                                         ("cols", cn), ("transpose", 1))))
    for b, (_, cn) in enumerate(sub):
        for t, (d0, dn) in enumerate(blocks(op.d, e)):
            prog.append(Instruction("compute", (
                ("a", lay["sp_Q"] + t * op.rows), ("b", lay["sp_KT"] + b * op.d + d0),
                ("c", lay["acc_S"] + b * op.rows), ("i", op.rows), ("j", cn), ("k", dn),
                ("accumulate", int(t > 0)))))
    prog.append(unit_command("requant", "wide", src=lay["acc_S"], dst=lay["acc_S"],
                             rows=len(sub) * op.rows, cols=e, arg=op.mult, shift=op.shift))
    return prog


def _weighted_sum(op: LongAttention, lay: dict, e: int, k0: int, kn: int, first: bool
                  ) -> list[Instruction]:
    """The block's values moved in, then O += P V and den += P 1."""
    prog = []
    vt = blocks(op.dv, e)
    for t, (v0, vn) in enumerate(vt):
        prog.append(Instruction("mvin", (("dram", op.v + k0 * op.dv + v0), ("stride", op.dv),
                                         ("sp", lay["sp_V"] + t * op.kb), ("rows", kn),
                                         ("cols", vn))))
    for b, (c0, cn) in enumerate(blocks(kn, e)):
        acc = int(not first or b > 0)
        for t, (_, vn) in enumerate(vt):
            prog.append(Instruction("compute", (
                ("a", lay["sp_P"] + b * op.rows), ("b", lay["sp_V"] + t * op.kb + c0),
                ("c", lay["acc_O"] + t * op.rows), ("i", op.rows), ("j", vn), ("k", cn),
                ("accumulate", acc))))
        prog.append(Instruction("compute", (
            ("a", lay["sp_P"] + b * op.rows), ("b", lay["sp_ONES"] + c0),
            ("c", lay["acc_DEN"]), ("i", op.rows), ("j", 1), ("k", cn), ("accumulate", acc))))
    return prog


def _heads(op: LongAttention, base: int, width: int, at: int, stride: int, d0: int,
           dn: int, out: bool) -> list[Instruction]:
    """Per head, its ``c`` rows between memory rows ``at + h c`` and DRAM rows ``first ..``
    of head ``h`` (``width`` elements a DRAM row of ``stride`` bytes, from element ``d0``)."""
    if op.tokens == op.c:                       # the heads' rows are contiguous in DRAM too
        return _rows(op.rows, base, width, at, stride, d0, dn, out, 0)
    prog = []
    for h in range(op.g):
        prog += _rows(op.c, base, width, at + h * op.c, stride, d0, dn, out,
                      h * op.tokens + op.first)
    return prog


def _rows(rows: int, base: int, width: int, at: int, stride: int, d0: int, dn: int,
          out: bool, first: int) -> list[Instruction]:
    """One move of ``rows`` rows between memory row ``at`` and DRAM row ``first``."""
    dram = base + (first * width + d0) * (stride // width)
    fields = (("dram", dram), ("stride", stride), ("rows", rows), ("cols", dn))
    return [Instruction("mvout", (("acc", at), *fields)) if out else
            Instruction("mvin", (("sp", at), *fields))]


def long_attention_program(arch: ArchSpec, op: LongAttention) -> list[Instruction]:
    """The checked program of one query tile (module docstring)."""
    index, e = chain_dataflow(arch, None, "long-context attention")
    if not _fits(arch, e, op):
        raise SpecError(f"a block of {op.kb} keys for {op.g} query heads x {op.c} tokens, "
                        f"d={op.d}, dv={op.dv} does not fit {arch.name!r}'s memories (largest "
                        f"block: {largest_block(arch, op.g, op.d, op.dv, c=op.c)})")
    lay = _layout(e, op)
    prog = [Instruction("config", (("dataflow", index),)),
            Instruction("mvin", (("dram", op.ones), ("stride", 0), ("sp", lay["sp_ONES"]),
                                 ("rows", op.kb), ("cols", 1)))]
    for t, (d0, dn) in enumerate(blocks(op.d, e)):
        prog += _heads(op, op.q, op.d, lay["sp_Q"] + t * op.rows, op.d, d0, dn, False)
    own = op.c if op.c > 1 and op.causal else 0         # the tile's own keys: one causal block
    kblocks = [(k0, kn, 0) for k0, kn in blocks(op.keys - own, op.kb)]
    kblocks += [(op.keys - own, own, _CAUSAL)] if own else []
    for n, (k0, kn, causal) in enumerate(kblocks):
        prog += _logits(op, lay, e, k0, kn)
        prog.append(unit_command("softmax", "max", src=lay["acc_S"], rows=op.rows, cols=kn,
                                 arg=lay["acc_MAX"], shift=int(n == 0) | causal))
    for n, (k0, kn, causal) in enumerate(kblocks):
        prog += _logits(op, lay, e, k0, kn)
        prog.append(unit_command("softmax", "scaled", src=lay["acc_S"], dst=lay["sp_P"],
                                 rows=op.rows, cols=kn, arg=lay["acc_MAX"], shift=causal))
        prog += _weighted_sum(op, lay, e, k0, kn, n == 0)
    ob = arch.types[2].bits // 8
    for t, (v0, vn) in enumerate(blocks(op.dv, e)):
        prog.append(unit_command("normalizer", "divide", src=lay["acc_O"] + t * op.rows,
                                 dst=lay["acc_O"] + t * op.rows, rows=op.rows, cols=vn,
                                 arg=lay["acc_DEN"], count=1))
        prog += _heads(op, op.out, op.dv, lay["acc_O"] + t * op.rows, op.dv * ob, v0, vn,
                       True)
    check_program(prog, arch)
    return prog


def _check_head(q: np.ndarray, k: np.ndarray, v: np.ndarray, causal: bool = True
                ) -> tuple[int, int, int, int, int]:
    """(G, C, D, keys, Dv) of a tile's q (G, C, D), k (keys, D), v (keys, Dv)."""
    if q.ndim != 3 or k.ndim != 2 or v.ndim != 2 or k.shape[1] != q.shape[2] \
            or v.shape[0] != k.shape[0] or (causal and q.shape[1] > k.shape[0]):
        keys = "(L+C, D), (L+C, Dv)" if causal else "(N, D), (N, Dv)"
        raise ValueError(f"q {q.shape}, k {k.shape}, v {v.shape}: expected (G, C, D), {keys}")
    return (*q.shape, *v.shape)


def _run(arch: ArchSpec, q: np.ndarray, k: np.ndarray, v: np.ndarray,
         tiles: list[LongAttention]) -> KernelRun:
    """The tiles' programs as one run; ``output`` (G, C, Dv), the normalizer's codes."""
    op = tiles[0]
    program = [ins for tile in tiles for ins in long_attention_program(arch, tile)]
    c_t = arch.types[2]
    size = op.g * op.tokens * op.dv
    machine = Machine(arch, op.out + size * c_t.bits // 8)
    for base, x in ((op.q, q), (op.k, k), (op.v, v), (op.ones, np.ones(1, np.int64))):
        machine.write_dram(base, pack(np.ascontiguousarray(x), arch.types[0]))
    dram_in = machine.dram.tobytes()
    machine.run(program)
    out = unpack(machine.read_dram(op.out, size * c_t.bits // 8), size, c_t)
    return KernelRun(out.reshape(op.g, op.tokens, op.dv), program, machine, dram_in)


def tile_addresses(g: int, tokens: int, keys: int, d: int, dv: int) -> tuple[int, ...]:
    """DRAM byte addresses of q (g x tokens x d), k (keys x d), v (keys x dv), the constant 1
    and the output, one after the other from ``ALIGN``."""
    sizes = (g * tokens * d, keys * d, keys * dv, 1)
    return tuple(int(a) for a in np.cumsum([ALIGN] + [-(-n // ALIGN) * ALIGN for n in sizes]))


def run_long_decode(arch: ArchSpec, q: np.ndarray, k: np.ndarray, v: np.ndarray, mult: int,
                    shift: int, kb: int | None = None) -> KernelRun:
    """One decode step of int8 ``q`` (G, D) over keys ``k`` (L + 1, D) and values ``v``
    (L + 1, Dv) on the reference machine, ``kb`` keys a block (default: the largest that
    fits); ``output`` is (G, Dv), the normalizer's codes."""
    q, k, v = (np.asarray(x) for x in (q, k, v))
    if q.ndim != 2:
        raise ValueError(f"q {q.shape}: expected (G, D)")
    g, _, d, keys, dv = _check_head(q[:, None], k, v)
    kb = kb or largest_block(arch, g, d, dv)
    tile = LongAttention(g, 1, keys, d, dv, mult, shift, kb, 1, 0,
                         *tile_addresses(g, 1, keys, d, dv))
    run = _run(arch, q, k, v, [tile])
    return KernelRun(run.output[:, 0], run.program, run.machine, run.dram_in)


def query_tiles(g: int, chunk: int, keys: int, d: int, dv: int, mult: int, shift: int,
                tile: int, kb: int, causal: bool = True,
                addresses: tuple[int, ...] = (0, 0, 0, 0, 0)) -> list[LongAttention]:
    """The query tiles of ``tile`` tokens (the last one shorter) of a chunk of ``chunk``
    queries over ``keys`` keys: causal, the chunk is the keys' last positions and a tile
    sees the keys up to its last query; else every tile sees all ``keys``. ``addresses``:
    the DRAM bytes of q, k, v, the constant 1 and the output."""
    return [LongAttention(g, c, keys - chunk + t0 + c if causal else keys, d, dv, mult, shift,
                          kb, chunk, t0, *addresses, causal=causal)
            for t0, c in blocks(chunk, tile)]


def run_long_prefill(arch: ArchSpec, q: np.ndarray, k: np.ndarray, v: np.ndarray, mult: int,
                     shift: int, tile: int | None = None, kb: int | None = None,
                     causal: bool = True) -> KernelRun:
    """A prefill chunk of ``C`` tokens at context ``L``: int8 ``q`` (G, C, D), keys ``k``
    (L + C, D) and values ``v`` (L + C, Dv) (the chunk's last), causal, in query tiles of
    ``tile`` tokens (default: :func:`default_tile`) with ``kb`` keys a block (default: the
    largest for the tile); ``output`` is (G, C, Dv), the normalizer's codes. ``causal=False``:
    ``C`` queries over ``N`` keys ``k`` (N, D), ``v`` (N, Dv), any ``C``, every query seeing
    every key (golden's head with no mask)."""
    q, k, v = (np.asarray(x) for x in (q, k, v))
    g, chunk, d, keys, dv = _check_head(q, k, v, causal)
    tile = tile or default_tile(arch, g, d, dv)
    if tile < 1:
        raise SpecError(f"no query tile of {g} heads, d={d}, dv={dv} fits {arch.name!r}'s "
                        "memories")
    kb = kb or largest_block(arch, g, d, dv, c=tile)
    return _run(arch, q, k, v, query_tiles(g, chunk, keys, d, dv, mult, shift, tile, kb, causal,
                                           tile_addresses(g, chunk, keys, d, dv)))
