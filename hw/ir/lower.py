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

from ..front.layout import BankLayout, bank_layout, roles
from ..front.mac_spec import MacSpec
from ..front.plan import ArrayPlan
from .primitive import DEFAULT_DELAY, PrimitiveGraph

__all__ = ["LoweredDatapath", "lower_array", "lower_datapath", "partial_sum_sources",
           "restarts"]

FU = tuple[int, ...]


def _n(prefix: str, coord) -> str:
    return prefix + "_" + "_".join(map(str, coord))


@dataclass(frozen=True)
class LoweredDatapath:
    """A datapath graph and its interface.

    ``controls``: input node -> what drives it: ``("first", fu)`` (restart the partial sum),
    ``("enable", fu)`` (the accumulator takes the sum), ``("mode", i)`` (dataflow ``i`` runs),
    ``("write", bank, writers)`` (one of ``writers``, ``(plan i, output stream s)`` pairs,
    writes ``bank`` now).
    ``reads``: bank-data input node -> physical bank. ``outputs``: physical output bank -> the
    ``output`` node carrying its write-back value.
    """

    graph: PrimitiveGraph
    layout: BankLayout
    mac: MacSpec
    controls: dict[str, tuple]
    reads: dict[str, int]
    outputs: dict[int, str]


class _Builder:
    def __init__(self, plans: Sequence[ArrayPlan]) -> None:
        self.plans = list(plans)
        self.g = PrimitiveGraph()
        self.layout = bank_layout(self.plans)
        a, b, c = roles(self.plans[0])
        self.mac = MacSpec(a.dtype, b.dtype, c.dtype.bits)
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
        for role in range(2):
            x = roles(self.plans[0])[role]
            desc: dict[FU, dict[int, tuple]] = {}
            for i, plan in enumerate(self.plans):
                tree = plan.inputs[role]
                roots = {s.root: self.layout.bank_of[i][s.bank] for s in plan.streams
                         if s.tensor == tree.tensor.name}
                for f, (parent, delay) in tree.parent.items():
                    desc.setdefault(f, {})[i] = (
                        ("read", roots[f]) if f in roots else
                        ("reg", parent, delay) if delay else ("wire", parent, i))
            muxed = {f: self.node(_n(f"op{role}", f), "buf", x.dtype.bits,
                                  signed=x.dtype.signed)
                     for f, ds in sorted(desc.items()) if len(set(ds.values())) > 1}

            def shared(f, desc=desc, muxed=muxed, x=x):
                return muxed[f] if f in muxed else in_mode(f, min(desc[f]), desc, muxed, x)

            def in_mode(f, i, desc, muxed, x):
                d = desc[f][i]
                if d[0] == "read":
                    return self.read(d[1], x)
                if d[0] == "reg":
                    return self.delayed(shared(d[1]), d[2], _n(x.name, f))
                return in_mode(d[1], i, desc, muxed, x)

            for f, buf in muxed.items():
                out = self.by_mode([(i, in_mode(f, i, desc, muxed, x)) for i in sorted(desc[f])],
                                   _n(f"opm{role}", f))
                self.g.add_edge(out, buf)
            per_role.append({f: shared(f) for f in sorted(desc)})
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
        mac = self.mac
        bits = mac.acc_bits
        fus = sorted({f for p in self.plans for f in p.fus})
        sums: dict[FU, str] = {}
        first_of = {f: restarts(self.plans, f) for f in fus}
        sources_of = {f: partial_sum_sources(self.plans, f) for f in fus}
        # Sums first (chains read their upstream FU's sum), then each FU's partial-sum input.
        for f in fus:
            mul = self.node(_n("mul", f), "mul", mac.product_bits, operands[0][f],
                            operands[1][f], signed=True)
            base = _n("base", f)
            if sources_of[f]:
                self.g.add_node(base, "mux", bits, signed=True)
            else:                               # nothing to accumulate: the product is final
                base = self.const(bits)
            sums[f] = self.node(_n("sum", f), "add", bits, base, mul, signed=True)
        for f in fus:
            if not sources_of[f]:
                continue
            sources = []
            for i, s in sources_of[f]:
                if s == "acc":
                    sources.append((i, self.accumulator(f, sums[f])))
                else:
                    up, d_time = s
                    sources.append((i, self.delayed(sums[up], d_time, _n("psum", up))))
            # the accumulator's own feedback last: its mode mux is then the only one inside
            # the register loop (acc -> mux -> first mux -> add -> enable mux -> acc)
            sources.sort(key=lambda item: self.g.node(item[1]).name == _n("acc", f))
            psum = self.by_mode(sources, _n("psum_in", f))
            first = (self.control(_n("first", f), ("first", f)) if first_of[f]
                     else self.const(1))
            base = _n("base", f)
            for src in (first, self.const(bits), psum):
                self.g.add_edge(src, base)
        return sums

    def accumulator(self, f: FU, total: str) -> str:
        bits = self.mac.acc_bits
        acc = _n("acc", f)
        if acc not in self.g:
            en = self.control(_n("enable", f), ("enable", f))
            self.g.add_node(acc, "register", bits, signed=True)
            self.node(_n("acc_next", f), "mux", bits, en, total, acc, signed=True)
            self.g.add_edge(_n("acc_next", f), acc)
        return acc

    def write_back(self, sums: dict[FU, str]) -> None:
        bits = self.mac.acc_bits
        for bank, (role, _) in enumerate(self.layout.banks):
            if role != 2:
                continue
            by_sum: dict[str, list] = {}        # one FU may write this bank in several modes
            for i, plan in enumerate(self.plans):
                for s, stream in enumerate(plan.streams):
                    if stream.tensor == plan.output.tensor.name and \
                            self.layout.bank_of[i][stream.bank] == bank:
                        by_sum.setdefault(sums[stream.root], []).append((i, s))
            writers = [(tuple(pairs), total) for total, pairs in by_sum.items()]
            value = self.select(bank, writers, 0, len(writers))
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
                           ("write", bank, tuple(p for w, _ in writers[lo:mid] for p in w)))
        return self.node(f"wsel_b{bank}_{lo}_{hi}", "mux", self.mac.acc_bits, sel, left, right,
                         signed=True)


def partial_sum_sources(plans: Sequence[ArrayPlan], f: FU) -> list[tuple[int, object]]:
    """Where FU ``f``'s partial sum comes from, per dataflow ``i`` that reduces through it:
    ``(i, "acc")`` (its own accumulator, stationary outputs) or ``(i, (up, d_time))`` (the sum
    of FU ``up`` of a chain, ``d_time`` cycles late). The generator and the lowering share it."""
    sources = []
    for i, plan in enumerate(plans):
        out = plan.output
        if f not in plan.fus or out.vector is None:     # no reduction: products are final
            continue
        if out.vector.kind == "stationary":
            sources.append((i, "acc"))
        else:
            up = tuple(a - b for a, b in zip(f, out.vector.d_space, strict=True))
            if up in plan.fus:
                sources.append((i, (up, out.vector.d_time)))
    return sources


def restarts(plans: Sequence[ArrayPlan], f: FU) -> bool:
    """Does FU ``f``'s partial sum ever restart (else its ``first`` control is constant 0)?"""
    return any(f in p.fus and (p.output.vector is None or bool(p.output.first.get(f)))
               for p in plans)


def lower_array(plans: ArrayPlan | Sequence[ArrayPlan]) -> LoweredDatapath:
    """The datapath of the array for ``plans`` (one plan, or several fused) and its interface."""
    plans = [plans] if isinstance(plans, ArrayPlan) else list(plans)
    if not plans:
        raise ValueError("lower_array needs at least one plan")
    b = _Builder(plans)
    sums = b.fus(b.operands())
    b.write_back(sums)
    return LoweredDatapath(b.g, b.layout, b.mac, b.controls, b.reads, b.outputs)


def lower_datapath(plans: ArrayPlan | Sequence[ArrayPlan]) -> PrimitiveGraph:
    """The per-cycle datapath of ``plans`` as a :class:`PrimitiveGraph` (existing registers in)."""
    return lower_array(plans).graph
