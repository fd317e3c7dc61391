"""A P x Q output-stationary systolic array of :class:`MacUnit` FUs with on-chip operand buffers.

Scaffolding for the spine: the wiring follows one fixed rule (A flows right, B flows down, each
FU keeps its C[i, j]); the LEGO generator derives such interconnect from a spec instead.

Computes ``C = A @ B`` for A (P x K), B (K x Q), ``1 <= K <= depth``:

* host loads column ``k`` of A (P lanes) at ``a_waddr = k`` and row ``k`` of B (Q lanes) at
  ``b_waddr = k``; lane ``i`` of a word sits at bits ``[i*w, (i+1)*w)``;
* ``start`` (with ``k_len = K``) runs the array; ``busy`` is high for exactly
  :meth:`MacArraySpec.run_cycles` cycles, then ``done`` rises and stays high until the next start;
* row ``i`` of C is ``c_rdata`` (Q lanes of ``acc_bits``) while ``c_raddr = i``.
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .mac import MacSpec, MacUnit

__all__ = ["MacArray", "MacArraySpec"]


@dataclass(frozen=True)
class MacArraySpec:
    """Shape of the array, FU arithmetic and operand buffer depth (the largest K)."""

    rows: int = 4
    cols: int = 4
    mac: MacSpec = MacSpec()
    depth: int = 64

    def __post_init__(self) -> None:
        for name in ("rows", "cols", "depth"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"MacArraySpec.{name} must be a positive integer, got {v!r}")
        if self.rows * self.cols > 4096:
            raise ValueError(f"array of {self.rows}x{self.cols} FUs is too large (max 4096)")

    def run_cycles(self, k: int) -> int:
        """Cycles ``busy`` stays high for a K-step product: stream K words, drain the skew."""
        if not 1 <= k <= self.depth:
            raise ValueError(f"k must be in 1..{self.depth}, got {k}")
        return k + self.rows + self.cols - 2 + MacArray.READ_LATENCY + 1


class MacArray(wiring.Component):
    """Output-stationary systolic MAC array (see the module docstring for the protocol)."""

    #: cycles from ``start`` to the first operand word leaving its buffer.
    READ_LATENCY = 1

    def __init__(self, spec: MacArraySpec = MacArraySpec()) -> None:
        self.spec = spec
        p, q, mac = spec.rows, spec.cols, spec.mac
        super().__init__({
            "a_we": In(1), "a_waddr": In(range(spec.depth)),
            "a_wdata": In(p * mac.a_type.bits),
            "b_we": In(1), "b_waddr": In(range(spec.depth)),
            "b_wdata": In(q * mac.b_type.bits),
            "k_len": In(range(spec.depth + 1)),
            "start": In(1),
            "busy": Out(1),
            "done": Out(1),
            "c_raddr": In(range(p)),
            "c_rdata": Out(q * mac.acc_bits),
        })

    def elaborate(self, platform) -> Module:
        m = Module()
        spec, mac = self.spec, self.spec.mac
        p, q = spec.rows, spec.cols

        # Operand buffers: host writes, the controller streams one word per cycle.
        m.submodules.a_mem = a_mem = Memory(shape=p * mac.a_type.bits, depth=spec.depth, init=[])
        m.submodules.b_mem = b_mem = Memory(shape=q * mac.b_type.bits, depth=spec.depth, init=[])
        for mem, we, addr, data in ((a_mem, self.a_we, self.a_waddr, self.a_wdata),
                                    (b_mem, self.b_we, self.b_waddr, self.b_wdata)):
            wp = mem.write_port()
            m.d.comb += [wp.en.eq(we), wp.addr.eq(addr), wp.data.eq(data)]
        a_rd, b_rd = a_mem.read_port(), b_mem.read_port()

        # Controller: count cycles while busy; stream addresses 0..K-1.
        t = Signal(range(spec.depth + p + q + 2))
        issue = Signal()              # a word is read this cycle
        valid = Signal()              # the word read last cycle is on the read ports
        first = Signal()              # ... and it is k = 0
        m.d.comb += [a_rd.addr.eq(t), b_rd.addr.eq(t), issue.eq(self.busy & (t < self.k_len))]
        m.d.sync += [valid.eq(issue), first.eq(issue & (t == 0))]
        with m.If(self.start & ~self.busy):
            m.d.sync += [t.eq(0), self.busy.eq(1), self.done.eq(0)]
        with m.Elif(self.busy):
            m.d.sync += t.eq(t + 1)
            with m.If(t == self.k_len + p + q - 2 + self.READ_LATENCY):
                m.d.sync += [self.busy.eq(0), self.done.eq(1)]

        # Skew: lane i of A is delayed i cycles, lane j of B j cycles (with the valid/first flags
        # travelling alongside A, which meets B at every FU in the same cycle).
        a_lanes = [_lane(m, a_rd.data, i, mac.a_type.bits, mac.a_shape, f"a_skew{i}")
                   for i in range(p)]
        b_lanes = [_lane(m, b_rd.data, j, mac.b_type.bits, mac.b_shape, f"b_skew{j}")
                   for j in range(q)]
        flags = [_delay(m, Cat(valid, first), i, f"f_skew{i}") for i in range(p)]

        # Output-stationary systolic array: A moves right, B moves down, one register per hop.
        accs = []
        b_in = b_lanes                # the B value entering each column of row i
        for i in range(p):
            a_in, f_in = a_lanes[i], flags[i]
            row = []
            for j in range(q):
                fu = MacUnit(mac)
                m.submodules[f"fu_{i}_{j}"] = fu
                m.d.comb += [fu.a.eq(a_in), fu.b.eq(b_in[j]),
                             fu.en.eq(f_in[0]), fu.clear.eq(f_in[1])]
                a_in = _register(m, a_in, f"a_{i}_{j}")
                f_in = _register(m, f_in, f"f_{i}_{j}")
                row.append(fu)
            b_in = [_register(m, b_in[j], f"b_{i}_{j}") for j in range(q)]
            accs.append(row)

        with m.Switch(self.c_raddr):
            for i in range(p):
                with m.Case(i):
                    m.d.comb += self.c_rdata.eq(Cat(*(fu.acc for fu in accs[i])))
            with m.Default():   # addresses past the last row read as zero
                m.d.comb += self.c_rdata.eq(0)
        return m


def _register(m: Module, value, name: str) -> Signal:
    reg = Signal.like(value, name=name) if isinstance(value, Signal) else Signal(len(value),
                                                                                name=name)
    m.d.sync += reg.eq(value)
    return reg


def _delay(m: Module, value, cycles: int, name: str):
    for c in range(cycles):
        value = _register(m, value, f"{name}_{c}")
    return value


def _lane(m: Module, word, index: int, bits: int, shape, name: str):
    lane = Signal(shape, name=f"{name}_in")
    m.d.comb += lane.eq(word[index * bits:(index + 1) * bits])
    return _delay(m, lane, index, name)

