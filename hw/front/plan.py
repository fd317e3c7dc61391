"""From a :class:`~hw.spec.DesignSpec` to an array plan: FUs, interconnect, memory, timing.

The plan is pure data that both the RTL generator (:mod:`hw.generate`) and the host-side
memory images (:mod:`hw.images`) read, so the two can never disagree.

Timing model. A tile of the (zero-padded) problem runs the space-time map ``[s; t] = T . I``
with ``T`` unimodular, so FU ``s`` executes iteration ``I = c_s + g t`` for ``t`` in an interval.
Tiles start every ``period`` cycles and overlap: every per-tile activity (an FU computing, a
memory root streaming, an output root writing) is a :class:`Window` of at most ``period``
cycles at a fixed offset from its tile's start, so consecutive tiles never collide.

Layer: hw.front, the planning layer (plain Python, no Amaranth).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from math import ceil, prod

from .affine import determinant, integer_inverse, matvec, null_vectors
from .arborescence import minimum_arborescence
from .reuse import ReuseVector, reuse_vectors
from .spec import DesignSpec, SpecError, TensorSpec

__all__ = ["ArrayPlan", "Bank", "InputTree", "OutputChain", "Stream", "Window", "plan_array"]

MEMORY = "memory"
#: cost of feeding an FU from a memory port, in register-bit equivalents per operand bit.
MEMORY_PORT_COST = 64


@dataclass(frozen=True)
class Window:
    """Cycles ``start .. start + length - 1`` after each tile's start (``start >= 0``)."""

    start: int
    length: int


@dataclass(frozen=True)
class Stream:
    """The memory traffic of one root FU for one tensor, and where it lives.

    Word ``w`` of tile entry ``e`` sits at ``offset + e * words_per_tile + w`` of bank
    ``bank``; streams whose windows never overlap (every period) share a bank.
    """

    tensor: str
    root: tuple[int, ...]
    window: Window            #: datapath access cycles (read issue / write-back read)
    t0: int                   #: raw cycle ``t`` of the window's first access
    stream: bool              #: address advances every cycle (else one word per tile)
    words_per_tile: int
    entries: int              #: distinct tiles of the dims this tensor depends on
    strides: tuple[int, ...]  #: entry stride per outer dim (0 where independent)
    bank: int = -1
    offset: int = 0

    @property
    def depth(self) -> int:
        return self.entries * self.words_per_tile


@dataclass(frozen=True)
class Bank:
    """One physical memory: a tensor's streams that are never accessed in the same cycle."""

    tensor: str
    depth: int
    members: tuple[int, ...]  #: indices into :attr:`ArrayPlan.streams`


@dataclass(frozen=True)
class InputTree:
    """Interconnect of one input tensor: each FU's source (memory or a parent FU)."""

    tensor: TensorSpec
    parent: dict[tuple[int, ...], tuple[tuple[int, ...] | None, int]]  #: fu -> (parent, delay)
    vectors: tuple[ReuseVector, ...]


@dataclass(frozen=True)
class OutputChain:
    """Partial-sum flow of the output: stationary accumulation, a chain, or none."""

    tensor: TensorSpec
    vector: ReuseVector | None
    first: dict[tuple[int, ...], tuple[Window, ...]]   #: cycles the partial sum restarts
    write: dict[tuple[int, ...], tuple[Window, ...]]   #: cycles the FU's sum is final


@dataclass(frozen=True)
class ArrayPlan:
    spec: DesignSpec
    active: tuple[int, ...]                 #: indices of dims the space-time map uses
    transform: tuple[tuple[int, ...], ...]  #: T over the active dims (space rows, time row)
    inverse: tuple[tuple[int, ...], ...]
    tile: tuple[int, ...]                   #: intra-tile extent per dim
    padded: tuple[int, ...]                 #: problem extents rounded up to whole tiles
    n_tiles_per_dim: tuple[int, ...]
    fus: dict[tuple[int, ...], Window]      #: used FU -> its compute window
    t_base: int                             #: raw cycle of a tile's first activity
    period: int
    span: int                               #: cycles from a tile's first to last activity
    inputs: tuple[InputTree, InputTree]
    output: OutputChain
    streams: tuple[Stream, ...]
    banks: tuple[Bank, ...]

    @property
    def accumulates_across_tiles(self) -> bool:
        """Some reduction dim spans several tiles: write-back must read-modify-write."""
        out = self.output.tensor
        return any(n > 1 and not any(row[d] for row in out.access)
                   for d, n in enumerate(self.n_tiles_per_dim))

    @property
    def n_tiles(self) -> int:
        return prod(self.n_tiles_per_dim)

    @property
    def run_cycles(self) -> int:
        """Cycles ``busy`` is high for the whole problem."""
        return (self.n_tiles - 1) * self.period + self.span

    def iteration(self, fu: tuple[int, ...], t: int) -> tuple[int, ...]:
        """Intra-tile iteration (over all dims; inactive dims 0) that FU ``fu`` runs at ``t``."""
        act = matvec(self.inverse, (*fu, t))
        full = [0] * len(self.tile)
        for k, d in enumerate(self.active):
            full[d] = act[k]
        return tuple(full)


def _interval(c: tuple[int, ...], g: tuple[int, ...], tile: tuple[int, ...]):
    """Integer ``t`` with ``0 <= c + g t < tile`` componentwise, as (lo, hi) or None."""
    lo, hi = -(10**9), 10**9
    for ci, gi, ti in zip(c, g, tile, strict=True):
        if gi == 0:
            if not 0 <= ci < ti:
                return None
        elif gi > 0:
            lo, hi = max(lo, ceil(-ci / gi)), min(hi, (ti - 1 - ci) // gi)
        else:   # ci + gi t >= 0  <=>  t <= ci / |gi|;  ci + gi t <= ti - 1  <=>  t >= ...
            lo, hi = max(lo, ceil((ti - 1 - ci) / gi)), min(hi, ci // (-gi))
    return (lo, hi) if lo <= hi else None


def _minus(iv, cut):
    """Interval ``iv`` minus interval ``cut`` (either may be None): a list of intervals."""
    if iv is None:
        return []
    if cut is None or cut[1] < iv[0] or cut[0] > iv[1]:
        return [iv]
    out = []
    if cut[0] > iv[0]:
        out.append((iv[0], cut[0] - 1))
    if cut[1] < iv[1]:
        out.append((cut[1] + 1, iv[1]))
    return out


def _check_transform(spec: DesignSpec):
    df, dims = spec.dataflow, spec.op.dims
    rows = (*df.space, df.time)
    active = tuple(d for d in range(len(dims)) if any(r[d] for r in rows))
    for d, name in enumerate(dims):
        if d not in active and df.tile[d] != 1:
            raise SpecError(
                f"dataflow: dim {name!r} has tile {df.tile[d]} but neither space nor time uses "
                f"it, so iterations {name}=0 and {name}=1 would share an FU and a cycle; "
                f"give it tile 1 (an outer loop) or use it in the map")
    t = tuple(tuple(r[d] for d in active) for r in rows)
    if len(active) != len(rows):
        names = ", ".join(dims[d] for d in active)
        raise SpecError(
            f"dataflow: the space-time map has {len(rows)} rows (space + time) but uses "
            f"{len(active)} dims ({names}); it must be square to be invertible")
    det = determinant(t)
    if det == 0:
        found = null_vectors(t, len(active), bound=3)
        hint = ""
        if found:
            v = found[0]
            i1 = {dims[d]: max(0, -v[k]) for k, d in enumerate(active)}
            i2 = {dims[d]: max(0, v[k]) for k, d in enumerate(active)}
            hint = (f": iterations {i1} and {i2} both map to FU "
                    f"{matvec(t, tuple(i1.values()))[:-1]} in cycle "
                    f"{matvec(t, tuple(i1.values()))[-1]}")
        raise SpecError(f"dataflow: the space-time map is not invertible{hint}")
    if abs(det) != 1:
        raise SpecError(
            f"dataflow: the space-time map has determinant {det}; its inverse is not integral, "
            f"so some (FU, cycle) points would fall between iterations (use a unimodular map)")
    return active, t, integer_inverse(t)


def _fu_windows(spec, active, inv, tile):
    n_sp = len(spec.array)
    tile_act = tuple(tile[d] for d in active)
    g = tuple(row[n_sp] for row in inv)
    # The space coordinates' range over the tile box.
    for a, row in enumerate(spec.dataflow.space):
        lo = sum(c * (tile[d] - 1) for d, c in enumerate(row) if c < 0)
        hi = sum(c * (tile[d] - 1) for d, c in enumerate(row) if c > 0)
        if lo < 0 or hi >= spec.array[a]:
            bad = lo if lo < 0 else hi
            raise SpecError(
                f"dataflow.space[{a}] reaches FU coordinate {bad} over the tile "
                f"{dict(zip(spec.op.dims, tile, strict=True))}, outside array axis {a} "
                f"(size {spec.array[a]})")
    fus = {}
    coords = [()]
    for size in spec.array:
        coords = [(*c, x) for c in coords for x in range(size)]
    for s in coords:
        c = tuple(sum(inv[r][k] * s[k] for k in range(n_sp)) for r in range(len(active)))
        iv = _interval(c, g, tile_act)
        if iv is not None:
            fus[s] = (c, iv)
    return fus, g, tile_act


#: extra cost of a further source at an FU input that another fused dataflow already feeds
#: (a mux input), in register-bit equivalents per operand bit.
MUX_INPUT_COST = 1


def plan_array(spec: DesignSpec, *, prefer: Sequence[Mapping] | None = None) -> ArrayPlan:
    """Analyse ``spec``: raise :class:`SpecError` on anything the generator cannot build.

    ``prefer`` (joint selection for fusion, :func:`hw.fusion.plan_fused`): per input role, FU
    -> the ``(parent, delay)`` sources other dataflows give it (``parent`` None: memory). An
    edge that is one of them costs only its wire (its register chain and mux input exist);
    any other edge into such an FU pays a mux input on top of its cost.
    """
    active, t_mat, inv = _check_transform(spec)
    op, df = spec.op, spec.dataflow
    tile = df.tile
    padded = tuple(ceil(e / t) * t for e, t in zip(op.extents, tile, strict=True))
    n_tiles = tuple(p // t for p, t in zip(padded, tile, strict=True))
    fus, g, tile_act = _fu_windows(spec, active, inv, tile)
    n_sp = len(spec.array)
    _check_padding(spec, padded)

    def acc(t: TensorSpec):
        return tuple(tuple(row[d] for d in active) for row in t.access)

    # Inputs: a minimum arborescence over reuse edges, rooted at memory.
    trees = []
    root_windows = {}
    for role, x in enumerate(op.inputs):
        _, vecs = reuse_vectors(acc(x), t_mat, n_sp)
        moving = [v for v in vecs if v.kind != "stationary"]
        others = prefer[role] if prefer else {}

        def cost(u, f, regular, source, bits=x.dtype.bits, others=others):
            used = others.get(f, ())
            if source in used:
                return regular if source[0] is None else sum(
                    abs(a - b) for a, b in zip(f, u, strict=True))
            return regular + (MUX_INPUT_COST * bits if used else 0)

        edges = [(MEMORY, f, cost(MEMORY, f, MEMORY_PORT_COST * x.dtype.bits, (None, 0)))
                 for f in fus]
        for f in fus:
            for v in moving:
                u = tuple(a - b for a, b in zip(f, v.d_space, strict=True))
                if u in fus:
                    edges.append((u, f, cost(u, f, x.dtype.bits * v.d_time
                                             + sum(map(abs, v.d_space)), (u, v.d_time))))
        chosen = minimum_arborescence([MEMORY, *fus], edges, MEMORY)
        parent = {}
        for f in fus:
            p, _ = chosen[f]
            parent[f] = (None, 0) if p == MEMORY else (p, _delay(f, p, moving))
        trees.append(InputTree(x, parent, tuple(vecs)))
        # Each root streams what its subtree needs: t - (delay from the root).
        for f, (_, lo_hi) in fus.items():
            r, d = f, 0
            while parent[r][0] is not None:
                d += parent[r][1]
                r = parent[r][0]
            lo, hi = root_windows.get((x.name, r), (10**9, -(10**9)))
            root_windows[(x.name, r)] = (min(lo, lo_hi[0] - d), max(hi, lo_hi[1] - d))

    out = op.output
    out_chain = _output_chain(out, acc(out), t_mat, n_sp, fus, g, tile_act)

    # Timing: a tile's first activity is a root's read issue (one cycle before use); its last
    # is a write-back commit (one cycle after the read-modify-write read).
    t_base = min(lo - 1 for lo, _ in root_windows.values())
    write_span = {f: (min(w[0] for w in ws), max(w[1] for w in ws))
                  for f, ws in out_chain.write.items() if ws}
    t_end = max(hi + 1 for _, hi in write_span.values())
    lengths = [hi - lo + 1 for _, (lo, hi) in fus.values()]
    lengths += [hi - lo + 1 for lo, hi in root_windows.values()]
    lengths += [hi - lo + 1 for lo, hi in write_span.values()]
    period = max(lengths)
    span = t_end - t_base + 1

    def rel(lo, hi):
        return Window(lo - t_base, hi - lo + 1)

    # One stream per root; a tensor's streams share one layout (words per tile, strides).
    streams = []
    for x in op.inputs:
        stream = any(matvec(acc(x), g))
        wins = {r: (lo, hi) for (name, r), (lo, hi) in root_windows.items() if name == x.name}
        words = max(hi - lo + 1 for lo, hi in wins.values()) if stream else 1
        for r, (lo, hi) in sorted(wins.items()):
            streams.append(_stream(spec, x, r, rel(lo - 1, hi - 1), lo, stream, words, n_tiles))
    stream = any(matvec(acc(out), g))
    words = max(hi - lo + 1 for lo, hi in write_span.values()) if stream else 1
    for f, (lo, hi) in sorted(write_span.items()):
        streams.append(_stream(spec, out, f, rel(lo, hi), lo, stream, words, n_tiles))
    streams, banks = _partition(streams, period)

    shift = {f: Window(iv[0] - t_base, iv[1] - iv[0] + 1) for f, (_, iv) in fus.items()}
    first = {f: tuple(rel(*w) for w in ws) for f, ws in out_chain.first.items()}
    write = {f: tuple(rel(*w) for w in ws) for f, ws in out_chain.write.items()}
    return ArrayPlan(spec, active, t_mat, inv, tile, padded, n_tiles, shift, t_base, period,
                     span, (trees[0], trees[1]),
                     OutputChain(out, out_chain.vector, first, write), streams, banks)


def _delay(f, p, moving: list[ReuseVector]) -> int:
    ds = tuple(a - b for a, b in zip(f, p, strict=True))
    return min(v.d_time for v in moving if v.d_space == ds)


def _output_chain(out, a_out, t_mat, n_sp, fus, g, tile_act) -> OutputChain:
    dim, vecs = reuse_vectors(a_out, t_mat, n_sp)
    if dim > 1:
        raise SpecError(
            f"output {out.name}: {dim} reduction directions inside one tile; only one is "
            f"supported (give all but one reduction dim tile 1)")
    vec = None
    if dim == 1:
        cands = [v for v in vecs if v.d_time > 0 or any(v.d_space)]
        cands = [v for v in cands if v.d_time > 0] or cands[:1]
        vec = cands[0]
        if vec.kind == "stationary" and vec.d_time != 1:
            raise SpecError(f"output {out.name} stays in an FU but revisits it every "
                            f"{vec.d_time} cycles; only back-to-back accumulation is supported")
    first, write = {}, {}
    for f, (c, iv) in fus.items():
        if vec is None:
            first[f], write[f] = [iv], [iv]
            continue
        pred = tuple(a - b for a, b in zip(c, vec.d_iter, strict=True))
        succ = tuple(a + b for a, b in zip(c, vec.d_iter, strict=True))
        first[f] = _minus(iv, _interval(pred, g, tile_act))
        write[f] = _minus(iv, _interval(succ, g, tile_act))
    return OutputChain(out, vec, first, write)


def _check_padding(spec: DesignSpec, padded) -> None:
    """A padded reduction dim must read zeros from some input, or sums would pick up junk."""
    op = spec.op
    out = op.output
    for d, (e, p) in enumerate(zip(op.extents, padded, strict=True)):
        if p == e or any(row[d] for row in out.access):
            continue
        ok = any(row[d] and sum(1 for c in row if c) == 1 for x in op.inputs for row in x.access)
        if not ok:
            raise SpecError(
                f"dim {op.dims[d]!r} ({e}) is padded to {p} by its tile, but no input is "
                f"zero on the padding; choose a tile that divides {e}")


def _stream(spec, x: TensorSpec, root, window: Window, t0: int, stream: bool, words: int,
            n_tiles) -> Stream:
    dims = spec.op.dims
    strides = [0] * len(dims)
    step = 1
    for name in reversed(spec.dataflow.outer_order):
        d = dims.index(name)
        if n_tiles[d] > 1 and any(row[d] for row in x.access):
            strides[d] = step
            step *= n_tiles[d]
    return Stream(x.name, root, window, t0, stream, words, step, tuple(strides))


def _overlap(a: Window, b: Window, period: int) -> bool:
    """Do windows ``a`` and ``b``, each repeating every ``period`` cycles, ever overlap?"""
    d = (b.start - a.start) % period
    return d < a.length or d > period - b.length


def _partition(streams: list[Stream], period: int):
    """Banks: greedy colouring of each tensor's streams by window overlap (interval-graph
    colouring in start order), so concurrent accesses never share a bank. Of the banks a
    stream fits, it joins the shallowest (first on ties): as few banks as first fit, but
    balanced depths, which fused arrays (the k-th banks of several dataflows are one memory)
    need."""
    groups: list[tuple[str, list[int]]] = []
    rank = {t: i for i, t in enumerate(dict.fromkeys(s.tensor for s in streams))}
    order = sorted(range(len(streams)), key=lambda k: (rank[streams[k].tensor],
                                                       streams[k].window.start,
                                                       streams[k].root))
    for k in order:
        s = streams[k]
        fits = [(sum(streams[o].depth for o in members), g)
                for g, (tensor, members) in enumerate(groups)
                if tensor == s.tensor and not any(_overlap(s.window, streams[o].window, period)
                                                  for o in members)]
        if fits:
            groups[min(fits)[1]][1].append(k)
        else:
            groups.append((s.tensor, [k]))
    out = list(streams)
    banks = []
    for b, (tensor, members) in enumerate(groups):
        offset = 0
        for k in members:
            out[k] = replace(streams[k], bank=b, offset=offset)
            offset += streams[k].depth
        banks.append(Bank(tensor, offset, tuple(members)))
    return tuple(out), tuple(banks)

