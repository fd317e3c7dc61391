"""Cycle-accurate simulation of a :class:`~hw.primitive.PrimitiveGraph` under its semantics.

The semantics are those of the :mod:`hw.ir.kinds` docstring: values are bit patterns of their
node's width, an edge hands its consumer the low ``edge.width`` bits of its source, sign- or
zero-extended by the *source's* ``signed``, and every operator truncates its exact result to
its own width. :func:`check_graph` enforces the in-edge counts (:data:`~hw.primitive.ARITY`)
and ports; :func:`evaluate` is the reference evaluation of one node;
:func:`simulate_graph` runs a whole graph cycle by cycle.

Speed. The graph is compiled once into one straight-line Python function per graph (a
statement per combinational node, in topological order of the non-register subgraph; inputs
and register outputs enter as arguments, constants as literals), so a cycle costs a few
integer operations per node and no dictionary look-ups. The generated text holds only local
names derived from node indices and integer literals, never a node name.

Layer: hw.ir, the primitive-graph layer (plain Python, no Amaranth).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from .kinds import clamp_bounds
from .primitive import ARITY, Node, PrimitiveGraph

__all__ = ["as_signed", "check_graph", "evaluate", "read_operand", "simulate_graph"]

_SINKS = ("output", "mem_write")
_MANY_OPERANDS = 32         # an add with more operands sums a tuple (no deep expression tree)


def as_signed(value: int, width: int) -> int:
    """The ``width``-bit pattern ``value`` read as two's complement: ``value - 2**width`` when
    bit ``width - 1`` is set. ``value`` may be given in either encoding (``-2**(width-1) <=
    value < 2**width``); ``ValueError`` otherwise or for a width < 1."""
    _check_width(width)
    if isinstance(value, bool) or not isinstance(value, int) or not (
            -(1 << (width - 1)) <= value < 1 << width):
        raise ValueError(f"value {value!r} is not a {width}-bit pattern")
    value &= (1 << width) - 1
    return value - (1 << width) if value >> (width - 1) else value


def read_operand(pattern: int, width: int, signed: bool) -> int:
    """The integer a consumer reads from an edge of ``width`` bits whose source holds
    ``pattern``: its low ``width`` bits, sign-extended if ``signed`` else zero-extended."""
    _check_width(width)
    low = pattern & ((1 << width) - 1)
    return low - (1 << width) if signed and low >> (width - 1) else low


def evaluate(node: Node, operands: Sequence[int]) -> int:
    """The pattern (``0 <= result < 2**node.width``) an operator or sink ``node`` produces
    from the integers its ports read (:func:`read_operand`), per the table in
    :mod:`hw.ir.kinds`. A register gives its next value, a const its value. ``ValueError`` for
    an ``input``/``mem_read`` (its value comes from outside) or a wrong operand count."""
    kind, mask = node.kind, (1 << node.width) - 1
    if kind in ("input", "mem_read"):
        raise ValueError(f"node {node.name}: a {kind} takes its value from the environment")
    _check_count(node, len(operands))
    if kind == "const":
        return node.value & mask
    a = operands[0]
    if kind == "add":
        result = sum(operands)
    elif kind == "mul":
        result = a * operands[1]
    elif kind == "sub":
        result = a - operands[1]
    elif kind == "mux":
        result = operands[1] if a != 0 else operands[2]
    elif kind == "shift":
        result = a << node.value if node.value >= 0 else a >> -node.value
    elif kind == "compare":
        result = int(a < operands[1])
    elif kind == "relu":
        result = max(a, 0)
    elif kind == "max":
        result = max(a, operands[1])
    elif kind == "min":
        result = min(a, operands[1])
    elif kind == "clamp":
        lo, hi = clamp_bounds(node.value, node.signed)
        result = min(max(a, lo), hi)
    elif kind == "shl_var":                 # a shift by >= width leaves no bit of the result
        result = a << min(max(operands[1], 0), node.width)
    elif kind == "shr_var":
        result = a >> max(operands[1], 0)
    elif kind == "lod":
        result = abs(a).bit_length()
    elif kind == "rom":
        result = node.table[a] if 0 <= a < len(node.table) else 0
    elif kind == "recip":
        result = ((1 << node.value) + a // 2) // a if a > 0 else 0
    else:                                   # register, buf, output, mem_write
        result = a
    return result & mask


def check_graph(graph: PrimitiveGraph) -> None:
    """``ValueError`` naming the first node (in insertion order) whose in-edge count is outside
    its kind's :data:`~hw.primitive.ARITY` or whose ports are not ``0 .. k-1``."""
    for node in graph:
        edges = graph.in_edges(node.name)
        _check_count(node, len(edges))
        ports = [e.port for e in edges]
        if ports != list(range(len(ports))):
            raise ValueError(f"node {node.name}: ports must be 0..{len(ports) - 1}, "
                             f"got {ports}")


def simulate_graph(graph: PrimitiveGraph,
                   stimulus: Sequence[Mapping[str, int]]) -> list[dict[str, int]]:
    """Run ``graph`` for ``len(stimulus)`` cycles from its registers' initial values.

    In cycle ``t`` every ``input`` node and every ``mem_read`` without in-edges takes
    ``stimulus[t][name]`` (either encoding of its width; other keys are ignored); the result's
    entry ``t`` maps every ``output`` and ``mem_write`` node to its value in that cycle, an
    unsigned pattern (see :func:`as_signed`). Registers take their input at the end of the
    cycle. ``ValueError``: a malformed graph (:func:`check_graph`), a missing stimulus name,
    or a value that is not an int of its node's width."""
    program = _compile(graph)
    results = []
    state = program.initial
    for cycle, row in enumerate(stimulus):
        values = _read_row(program, row, cycle)
        outputs, state = program.step(values, state)
        results.append(dict(zip(program.outputs, outputs, strict=True)))
    return results


# ------------------------------------------------------------------------------------ helpers
@dataclass(frozen=True)
class _Program:
    """A compiled graph: ``step(inputs, state) -> (outputs, next_state)`` on tuples."""

    inputs: tuple[tuple[str, int], ...]     # (name, width) per stimulus value, in order
    outputs: tuple[str, ...]
    initial: tuple[int, ...]
    step: Callable[[tuple[int, ...], tuple[int, ...]], tuple[tuple[int, ...], tuple[int, ...]]]


def _check_width(width: int) -> None:
    if isinstance(width, bool) or not isinstance(width, int) or width < 1:
        raise ValueError(f"width must be a positive int, got {width!r}")


def _check_count(node: Node, count: int) -> None:
    least, most = ARITY[node.kind]
    if count < least or (most is not None and count > most):
        want = f"at least {least}" if most is None else str(least)
        raise ValueError(f"node {node.name}: a {node.kind} takes {want} in-edges, got {count}")


def _read_row(program: _Program, row: Mapping[str, int], cycle: int) -> tuple[int, ...]:
    values = []
    for name, width in program.inputs:
        try:
            value = row[name]
        except KeyError:
            raise ValueError(f"stimulus cycle {cycle}: no value for input {name!r}") from None
        if isinstance(value, bool) or not isinstance(value, int) or not (
                -(1 << (width - 1)) <= value < 1 << width):
            raise ValueError(f"stimulus cycle {cycle}: input {name!r} = {value!r} is not a "
                             f"{width}-bit value")
        values.append(value & ((1 << width) - 1))
    return tuple(values)


def _compile(graph: PrimitiveGraph) -> _Program:
    """Validate ``graph`` and generate its step function (see the module docstring)."""
    check_graph(graph)
    nodes = graph.nodes
    index = {name: i for i, name in enumerate(nodes)}
    inputs = [n for n in nodes.values() if n.kind in ("input", "mem_read")]
    registers = [n for n in nodes.values() if n.kind == "register"]
    sinks = [n for n in nodes.values() if n.kind in _SINKS]

    def operand(edge) -> str:
        """Expression of what ``edge`` hands its consumer."""
        src = nodes[edge.src]
        if src.kind == "const":
            return str(read_operand(src.value & ((1 << src.width) - 1), edge.width, src.signed))
        var, mask = f"v{index[edge.src]}", (1 << edge.width) - 1
        low = var if edge.width == src.width else f"({var} & {mask})"
        if not src.signed:
            return low
        half = 1 << (edge.width - 1)
        return f"(({low} ^ {half}) - {half})"

    def fits(edge, width: int) -> bool:
        """Whether ``edge``'s operand is already a pattern of ``width`` bits."""
        return not nodes[edge.src].signed and edge.width <= width

    lines = ["def step(ins, regs):"]
    if inputs:
        lines.append("    " + "".join(f"v{index[n.name]}, " for n in inputs) + "= ins")
    if registers:
        lines.append("    " + "".join(f"v{index[n.name]}, " for n in registers) + "= regs")
    for name in graph.topological_order():
        node = nodes[name]
        if node.kind in ("input", "mem_read", "register", "const") + _SINKS:
            continue
        edges = graph.in_edges(name)
        lines.append(f"    v{index[name]} = {_expression(node, edges, operand, fits)}")

    def port0(node: Node) -> str:
        """What a sink observes, or a register loads: its operand cut to its width."""
        (edge,) = graph.in_edges(node.name)
        return _masked(operand(edge), node.width, fits(edge, node.width))

    outs = "".join(f"{port0(n)}, " for n in sinks)
    loads = "".join(f"{port0(n)}, " for n in registers)
    lines.append(f"    return ({outs}), ({loads})")
    namespace: dict[str, object] = {}
    exec(compile("\n".join(lines), "<graph_sim>", "exec"), namespace)
    initial = tuple(n.value & ((1 << n.width) - 1) for n in registers)
    return _Program(tuple((n.name, n.width) for n in inputs), tuple(n.name for n in sinks),
                    initial, namespace["step"])


def _masked(expr: str, width: int, fits: bool) -> str:
    return expr if fits else f"({expr}) & {(1 << width) - 1}"


def _expression(node: Node, edges, operand, fits) -> str:
    """The right-hand side computing ``node`` (a combinational operator) from its in-edges."""
    ops = [operand(e) for e in edges]
    kind, width = node.kind, node.width
    if kind == "add":
        total = " + ".join(ops) if len(ops) <= _MANY_OPERANDS else f"sum(({', '.join(ops)},))"
        return _masked(total, width, len(ops) == 1 and fits(edges[0], width))
    if kind == "mul":
        return _masked(f"{ops[0]} * {ops[1]}", width, False)
    if kind == "sub":
        return _masked(f"{ops[0]} - {ops[1]}", width, False)
    if kind == "mux":
        return _masked(f"{ops[1]} if {ops[0]} else {ops[2]}", width,
                       fits(edges[1], width) and fits(edges[2], width))
    if kind == "shift":
        shifted = (f"{ops[0]} << {node.value}" if node.value >= 0
                   else f"{ops[0]} >> {-node.value}")
        return _masked(shifted, width, node.value <= 0 and fits(edges[0], width))
    if kind == "compare":
        return f"1 if {ops[0]} < {ops[1]} else 0"
    if kind == "relu":
        return _masked(f"max({ops[0]}, 0)", width, fits(edges[0], width))
    if kind in ("max", "min"):
        return _masked(f"{kind}({ops[0]}, {ops[1]})", width,
                       fits(edges[0], width) and fits(edges[1], width))
    if kind == "clamp":
        lo, hi = clamp_bounds(node.value, node.signed)
        return _masked(f"min(max({ops[0]}, {lo}), {hi})", width, lo == 0)
    if kind in ("shl_var", "shr_var"):
        amount = ops[1] if _nonnegative(edges[1], fits) else f"max({ops[1]}, 0)"
        if kind == "shr_var":
            return _masked(f"{ops[0]} >> {amount}", width, fits(edges[0], width))
        if (1 << edges[1].width) - 1 > width:   # cap: a shift by >= width leaves 0 anyway
            amount = f"min({amount}, {width})"
        return _masked(f"{ops[0]} << {amount}", width, False)
    if kind == "lod":
        magnitude = f"({ops[0]})" if _nonnegative(edges[0], fits) else f"abs({ops[0]})"
        return _masked(f"{magnitude}.bit_length()", width, edges[0].width < 1 << width)
    if kind == "rom":
        table = tuple(entry & ((1 << width) - 1) for entry in node.table)
        lookup = f"{table!r}[{ops[0]}]"
        if _nonnegative(edges[0], fits):
            if 1 << edges[0].width <= len(table):       # every pattern indexes the table
                return lookup
            return f"{lookup} if {ops[0]} < {len(table)} else 0"
        return f"{lookup} if 0 <= {ops[0]} < {len(table)} else 0"
    if kind == "recip":
        quotient = f"({1 << node.value} + ({ops[0]} >> 1)) // {ops[0]}"
        return _masked(f"{quotient} if {ops[0]} > 0 else 0", width,
                       1 << node.value < 1 << width)
    return _masked(ops[0], width, fits(edges[0], width))        # buf


def _nonnegative(edge, fits) -> bool:
    """Whether ``edge``'s operand is never negative: its source is unsigned (:func:`_compile`'s
    ``fits`` of the edge at its own width)."""
    return fits(edge, edge.width)
