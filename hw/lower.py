"""Lower a generated array's datapath (an :class:`~hw.plan.ArrayPlan`) to a primitive graph.

The graph holds what runs every cycle between the banks: per root stream a ``mem_read`` (its
address an ``input``), the operand forwarding registers of the interconnect, per FU a ``mul``
(the exact product), a ``mux`` (``first``: restart the partial sum) and an ``add`` (the
accumulator width), the accumulator register (stationary outputs) or the partial-sum
registers of a chain, and per writer the write-back register feeding an ``output`` (the bank's
write port). Control (window activity) enters as one ``input`` per FU. Widths are bits;
delays are :data:`hw.primitive.DEFAULT_DELAY` units (a multiplier 1.0, an adder 0.5).
"""

from __future__ import annotations

from .mac import MacSpec
from .plan import ArrayPlan
from .primitive import PrimitiveGraph

__all__ = ["lower_datapath"]


def _n(prefix: str, coord) -> str:
    return prefix + "_" + "_".join(map(str, coord))


def lower_datapath(plan: ArrayPlan) -> PrimitiveGraph:
    """The per-cycle datapath of ``plan`` as a :class:`PrimitiveGraph` (existing registers in)."""
    g = PrimitiveGraph()
    out = plan.output
    a_in, b_in = (t.tensor for t in plan.inputs)
    mac = MacSpec(a_in.dtype, b_in.dtype, out.tensor.dtype.bits)
    acc_bits = mac.acc_bits

    operand = {}
    for tree in plan.inputs:
        x = tree.tensor
        for s in plan.streams:
            if s.tensor == x.name:
                addr = g.add_node(_n(f"addr_{x.name}", s.root), "input", 16).name
                rd = g.add_node(_n(f"rd_{x.name}", s.root), "mem_read", x.dtype.bits).name
                g.add_edge(addr, rd)
                operand[(x.name, s.root)] = rd
        pending = [f for f in tree.parent if (x.name, f) not in operand]
        while pending:                       # parents before children
            rest = []
            for f in pending:
                p, delay = tree.parent[f]
                if (x.name, p) not in operand:
                    rest.append(f)
                    continue
                src = operand[(x.name, p)]
                for k in range(delay):
                    reg = g.add_node(_n(f"{x.name}_fwd{k}", f), "register", x.dtype.bits).name
                    g.add_edge(src, reg)
                    src = reg
                operand[(x.name, f)] = src
            if len(rest) == len(pending):
                raise ValueError(f"input {x.name}: the interconnect has a cycle")
            pending = rest

    stationary = out.vector is not None and out.vector.kind == "stationary"
    order = list(plan.fus)
    if out.vector is not None:
        order.sort(key=lambda f: sum(a * b for a, b in zip(f, out.vector.d_space, strict=True)))
    total = {}
    for f in order:
        mul = g.add_node(_n("mul", f), "mul", mac.product_bits).name
        g.add_edge(operand[(a_in.name, f)], mul)
        g.add_edge(operand[(b_in.name, f)], mul)
        add = g.add_node(_n("add", f), "add", acc_bits).name
        g.add_edge(mul, add)
        if out.vector is not None:
            ctl = g.add_node(_n("first", f), "input", 1).name
            mux = g.add_node(_n("mux", f), "mux", acc_bits).name
            g.add_edge(ctl, mux)
            g.add_edge(mux, add)
            if stationary:
                acc = g.add_node(_n("acc", f), "register", acc_bits).name
                g.add_edge(add, acc)
                g.add_edge(acc, mux)
            else:
                up = tuple(a - b for a, b in zip(f, out.vector.d_space, strict=True))
                if up in total:
                    src = total[up]
                    for k in range(out.vector.d_time):
                        reg = g.add_node(_n(f"psum{k}", f), "register", acc_bits).name
                        g.add_edge(src, reg)
                        src = reg
                    g.add_edge(src, mux)
        total[f] = add
    for s in plan.streams:
        if s.tensor == out.tensor.name:
            wb = g.add_node(_n("wb", s.root), "register", acc_bits).name
            g.add_edge(total[s.root], wb)
            port = g.add_node(_n("wport", s.root), "output", acc_bits).name
            g.add_edge(wb, port)
    return g
