"""Lower a generated array's datapath (one or several fused plans) to a primitive graph.

The graph holds what runs every cycle between the banks, exactly as
:class:`~hw.generate.GeneratedArray` builds it, so it can be pipelined and emitted in its place
(:mod:`hw.graph_rtl`):

* per physical input bank an ``input`` carrying its read data, with a ``mem_read``'s delay
  (the address logic stays in the controller; inputs sit at pipeline stage 0, so the data
  is never retimed against the control); the operand forwarding registers of the
  interconnect (one chain per source and delay, shared by the dataflows that use it); where
  an FU input has different sources in different dataflows, a chain of ``mux`` es selected
  by the ``mode_<i>`` inputs;
* per FU a ``mul`` (the exact product), a ``mux`` that restarts the partial sum (``first``), an
  ``add`` at the accumulator width, and the accumulator register with its enable ``mux``
  (stationary outputs) or the partial-sum registers of a chain;
* per physical output bank the write-back register, loaded every cycle through a balanced
  tree of ``mux`` es with the sum of whichever writer writes now (the streams of a bank take
  turns, so at most one does; with none, the value is one the write port, enabled only after
  a write, ignores), feeding an ``output``.

Control enters as 1-bit ``input`` nodes (:attr:`LoweredDatapath.controls` says what drives
each); control that is constant for a design (an FU whose partial sum never restarts, an
accumulator never enabled) is a ``const`` node instead, which
:func:`hw.passes.propagate_constants` folds away. Delays are
:data:`hw.primitive.DEFAULT_DELAY` units (a multiplier 1.0, an adder 0.5).

Layer: hw.ir, the primitive-graph layer (plain Python, no Amaranth).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..front.plan import ArrayPlan
from .datapath import DatapathDescription, Read, describe_datapath
from .primitive import DEFAULT_DELAY, PrimitiveGraph

__all__ = ["LoweredDatapath", "lower", "lower_array"]

FU = tuple[int, ...]


def _n(prefix: str, coord) -> str:
    return prefix + "_" + "_".join(map(str, coord))


@dataclass(frozen=True)
class LoweredDatapath:
    """A datapath graph and its interface.

    ``controls``: input node -> what drives it: ``("first", fu)`` (restart the partial sum),
    ``("enable", fu)`` (the accumulator takes the sum), ``("mode", i)`` (dataflow ``i`` runs),
    ``("write", bank, writers)`` (one of ``writers``, :class:`~hw.ir.datapath.Writer` s,
    writes ``bank`` now).
    ``reads``: bank-data input node -> physical bank. ``outputs``: physical output bank -> the
    ``output`` node carrying its write-back value.
    """

    graph: PrimitiveGraph
    description: DatapathDescription
    controls: dict[str, tuple]
    reads: dict[str, int]
    outputs: dict[int, str]


class _Builder:
    def __init__(self, desc: DatapathDescription) -> None:
        self.desc = desc
        self.g = PrimitiveGraph()
        self.controls: dict[str, tuple] = {}
        self.reads: dict[str, int] = {}
        self.outputs: dict[int, str] = {}
        self._delays: dict[tuple[str, int], str] = {}
        self._consts: dict[int, str] = {}

    # -- helpers ---------------------------------------------------------------------------
    def node(self, name, kind, width, *ins, signed=False, value=0, delay=None):
        self.g.add_node(name, kind, width, delay, signed=signed, value=value)
        for src in ins:
            self.g.add_edge(src, name)
        return name

    def control(self, name: str, what: tuple) -> str:
        if name not in self.controls:
            self.node(name, "input", 1)
            self.controls[name] = what
        return name

    def const(self, width: int) -> str:
        if width not in self._consts:
            self._consts[width] = self.node(f"zero_{width}", "const", width, signed=True)
        return self._consts[width]

    def delayed(self, src: str, cycles: int, prefix: str) -> str:
        """``src`` through ``cycles`` registers (one chain per source and delay)."""
        key = (src, cycles)
        if key not in self._delays:
            node = self.g.node(src)
            out = src
            base, n = prefix, 1
            while f"{prefix}_d0" in self.g:           # another chain into the same FU
                prefix, n = f"{base}_{n}", n + 1
            for k in range(cycles):
                out = self.node(f"{prefix}_d{k}", "register", node.width, out,
                                signed=node.signed)
            self._delays[key] = out
        return self._delays[key]

    def by_mode(self, sources: list[tuple[int, str]], name: str) -> str | None:
        """One value per dataflow: ``mux(mode_i, s_i, ...)``; the first source is the default
        (exactly one mode is high, so modes with the default source need no mux)."""
        if not sources:
            return None
        distinct = {s for _, s in sources}
        if len(distinct) == 1:
            return sources[0][1]
        out = sources[0][1]
        for i, src in sources[1:]:
            if src == sources[0][1]:            # the default already (one mode runs at a time)
                continue
            node = self.g.node(src)
            sel = self.control(f"mode_{i}", ("mode", i))
            out = self.node(f"{name}_m{i}", "mux", node.width, sel, src, out, signed=node.signed)
        return out

    # -- datapath --------------------------------------------------------------------------
    def operands(self) -> list[dict[FU, str]]:
        """Per input role, FU -> its operand. An FU with different sources in different
        dataflows gets a mux chain (ending in a ``buf`` named ``op<role>_<fu>``); forwarding
        registers take the muxed operand of their source FU, so a chain is shared by every
        dataflow that forwards along it (like the generated RTL); wires (delay 0) take the
        source's value in their own dataflow (no loops through the mode muxes)."""
        per_role = []
        for role, x in enumerate(self.desc.operands):
            muxed = {f: self.node(_n(f"op{role}", f), "buf", x.dtype.bits,
                                  signed=x.dtype.signed)
                     for f in sorted(x.sources) if x.muxed(f)}
            in_mode = {f: dict(s) for f, s in x.sources.items()}

            def shared(f, x=x, muxed=muxed, in_mode=in_mode):
                if f in muxed:
                    return muxed[f]
                return of_mode(f, x.sources[f][0][0], x, muxed, in_mode)

            def of_mode(f, i, x, muxed, in_mode):
                src = in_mode[f][i]
                if isinstance(src, Read):
                    return self.read(src.bank, x)
                if src.delay:
                    return self.delayed(shared(src.parent), src.delay, _n(x.name, f))
                return of_mode(src.parent, i, x, muxed, in_mode)

            for f, buf in muxed.items():
                out = self.by_mode([(i, of_mode(f, i, x, muxed, in_mode))
                                    for i, _ in x.sources[f]], _n(f"opm{role}", f))
                self.g.add_edge(out, buf)
            per_role.append({f: shared(f) for f in sorted(x.sources)})
        return per_role

    def read(self, bank: int, x) -> str:
        """The read data of physical bank ``bank`` (an input with a memory read's delay)."""
        name = f"rd_b{bank}"
        if name not in self.reads:
            self.node(name, "input", x.dtype.bits, signed=x.dtype.signed,
                      delay=DEFAULT_DELAY["mem_read"])
            self.reads[name] = bank
        return name

    def fus(self, operands: list[dict[FU, str]]) -> dict[FU, str]:
        mac = self.desc.mac
        bits = mac.acc_bits
        sums: dict[FU, str] = {}
        # Sums first (chains read their upstream FU's sum), then each FU's partial-sum input.
        for f, fu in self.desc.fus.items():
            mul = self.node(_n("mul", f), "mul", mac.product_bits, operands[0][f],
                            operands[1][f], signed=True)
            base = _n("base", f)
            if fu.psum:
                self.g.add_node(base, "mux", bits, signed=True)
            else:                               # nothing to accumulate: the product is final
                base = self.const(bits)
            sums[f] = self.node(_n("sum", f), "add", bits, base, mul, signed=True)
        for f, fu in self.desc.fus.items():
            if not fu.psum:
                continue
            sources = []
            for i, s in fu.psum:
                if s == "acc":
                    sources.append((i, self.accumulator(f, sums[f])))
                else:
                    up, d_time = s
                    sources.append((i, self.delayed(sums[up], d_time, _n("psum", up))))
            # the accumulator's own feedback last: its mode mux is then the only one inside
            # the register loop (acc -> mux -> first mux -> add -> enable mux -> acc)
            sources.sort(key=lambda item: self.g.node(item[1]).name == _n("acc", f))
            psum = self.by_mode(sources, _n("psum_in", f))
            first = (self.control(_n("first", f), ("first", f)) if fu.restarts
                     else self.const(1))
            base = _n("base", f)
            for src in (first, self.const(bits), psum):
                self.g.add_edge(src, base)
        return sums

    def accumulator(self, f: FU, total: str) -> str:
        bits = self.desc.mac.acc_bits
        acc = _n("acc", f)
        if acc not in self.g:
            en = self.control(_n("enable", f), ("enable", f))
            self.g.add_node(acc, "register", bits, signed=True)
            self.node(_n("acc_next", f), "mux", bits, en, total, acc, signed=True)
            self.g.add_edge(_n("acc_next", f), acc)
        return acc

    def write_back(self, sums: dict[FU, str]) -> None:
        bits = self.desc.mac.acc_bits
        for bank, writers in self.desc.writers.items():
            by_sum: dict[str, list] = {}        # one FU may write this bank in several modes
            for w in writers:
                by_sum.setdefault(sums[w.root], []).append(w)
            grouped = [(tuple(ws), total) for total, ws in by_sum.items()]
            value = self.select(bank, grouped, 0, len(grouped))
            reg = self.node(f"wb_b{bank}", "register", bits, value, signed=True)
            self.outputs[bank] = self.node(f"out_b{bank}", "output", bits, reg, signed=True)

    def select(self, bank: int, writers: list, lo: int, hi: int) -> str:
        """The sum of whichever of ``writers[lo:hi]`` writes now: a balanced tree of muxes, each
        selected by "one of my left half writes" (at most one writer of a bank is active in a
        cycle; with none, the value is unused)."""
        if hi - lo == 1:
            return writers[lo][1]
        mid = (lo + hi) // 2
        left, right = self.select(bank, writers, lo, mid), self.select(bank, writers, mid, hi)
        sel = self.control(f"write_b{bank}_{lo}_{mid}",
                           ("write", bank, tuple(w for ws, _ in writers[lo:mid] for w in ws)))
        return self.node(f"wsel_b{bank}_{lo}_{hi}", "mux", self.desc.mac.acc_bits, sel, left,
                         right, signed=True)


def lower(desc: DatapathDescription) -> LoweredDatapath:
    """The primitive graph of the datapath ``desc`` describes, and its interface."""
    b = _Builder(desc)
    sums = b.fus(b.operands())
    b.write_back(sums)
    return LoweredDatapath(b.g, desc, b.controls, b.reads, b.outputs)


def lower_array(plans: Sequence[ArrayPlan]) -> LoweredDatapath:
    """The datapath of the array for ``plans`` (one plan, or several fused) and its interface."""
    if isinstance(plans, ArrayPlan):
        raise TypeError("lower_array takes a sequence of plans: pass [plan]")
    return lower(describe_datapath(plans))
