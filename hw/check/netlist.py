"""Read emitted Verilog back: ports, registers, memories and instances per module (pyverilog).

Used to check what the generator really built (register bits before and after pipelining,
buffer sizes, port widths) from the Verilog text rather than from Amaranth objects.

* Amaranth's ``(* ... *)`` attributes are blanked out before parsing (pyverilog rejects them);
  line numbers in error messages stay those of the text given.
* Escaped identifiers are reported without their backslash: ``\\a$36`` is ``a$36``, and the
  module ``\\arr.fu_0_0`` is ``arr.fu_0_0`` (Verilog treats ``\\name`` and ``name`` alike).
* A *register* is a ``reg`` (not an array) assigned somewhere inside an ``always`` block whose
  sensitivity list has an edge (``posedge``/``negedge``). Amaranth's combinational ``always @*``
  regs do not count. A memory's synchronous read-data register (Amaranth names it ``_0_``,
  ``_1_``...) is a register by this rule.
* A *memory* is a ``reg [w-1:0] name [a:b]`` array: ``(width, depth)`` with
  ``depth = |a - b| + 1`` (the product over all unpacked dimensions).
* Widths must be constant expressions of integers and the module's own ``parameter`` /
  ``localparam`` defaults; parameter overrides at instances are not applied.

One pyverilog parser is built per process (about a second: PLY builds its LALR tables) in a
temporary directory, so nothing is written to the working directory, and then reused.

Layer: hw.check, the checks of emitted designs.
"""

from __future__ import annotations

import re
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass

from pyverilog.vparser import ast as vast
from pyverilog.vparser.parser import ParseError, VerilogParser

__all__ = ["ModuleNetlist", "Netlist", "Port", "VerilogParseError", "read_netlist"]


class VerilogParseError(ValueError):
    """The text is not Verilog that pyverilog accepts (the message is one line)."""


@dataclass(frozen=True)
class Port:
    """A module port: ``direction`` is ``"input"``, ``"output"`` or ``"inout"``."""

    name: str
    direction: str
    width: int


@dataclass(frozen=True)
class ModuleNetlist:
    """What one Verilog module declares.

    ``ports`` in the order of the module header; ``registers`` (name -> bits), ``memories``
    (name -> (width, depth)) in declaration order; ``submodules`` maps instance names to the
    names of the modules they instantiate, in text order.
    """

    name: str
    ports: dict[str, Port]
    registers: dict[str, int]
    memories: dict[str, tuple[int, int]]
    submodules: dict[str, str]

    @property
    def register_bits(self) -> int:
        return sum(self.registers.values())

    @property
    def memory_bits(self) -> int:
        return sum(w * d for w, d in self.memories.values())


@dataclass(frozen=True)
class Netlist:
    """The modules of one Verilog text, seen from ``top``.

    ``ports``, ``registers``, ``memories``, ``register_bits`` and ``submodules`` are those of
    the top module alone; ``total_register_bits`` / ``total_memory_bits`` add every module
    instantiated below it, once per instance. Modules instantiated but not defined in the text
    (black boxes) count as empty; :attr:`external_modules` lists them.
    """

    top: str
    modules: dict[str, ModuleNetlist]

    def all_modules(self) -> dict[str, ModuleNetlist]:
        """Every module defined in the text (instantiated or not), in text order."""
        return dict(self.modules)

    @property
    def top_module(self) -> ModuleNetlist:
        return self.modules[self.top]

    @property
    def ports(self) -> dict[str, Port]:
        return self.top_module.ports

    @property
    def registers(self) -> dict[str, int]:
        return self.top_module.registers

    @property
    def memories(self) -> dict[str, tuple[int, int]]:
        return self.top_module.memories

    @property
    def submodules(self) -> dict[str, str]:
        return self.top_module.submodules

    @property
    def register_bits(self) -> int:
        return self.top_module.register_bits

    def instance_counts(self) -> dict[str, int]:
        """How many times each module occurs in the hierarchy under ``top`` (``top``: 1)."""
        counts: dict[str, int] = {}
        for name, times in self._walk(self.top, 1, ()):
            counts[name] = counts.get(name, 0) + times
        return counts

    @property
    def total_register_bits(self) -> int:
        return sum(self.modules[name].register_bits * times
                   for name, times in self.instance_counts().items() if name in self.modules)

    @property
    def total_memory_bits(self) -> int:
        return sum(self.modules[name].memory_bits * times
                   for name, times in self.instance_counts().items() if name in self.modules)

    @property
    def external_modules(self) -> list[str]:
        """Modules instantiated under ``top`` whose definition is not in the text."""
        return [name for name in self.instance_counts() if name not in self.modules]

    def _walk(self, name: str, times: int, stack: tuple[str, ...]) -> Iterator[tuple[str, int]]:
        if name in stack:
            raise ValueError(f"module {name!r} instantiates itself: "
                             f"{' -> '.join((*stack, name))}")
        yield name, times
        module = self.modules.get(name)
        if module is not None:
            for child in module.submodules.values():
                yield from self._walk(child, times, (*stack, name))


def read_netlist(verilog: str, top: str) -> Netlist:
    """Parse ``verilog`` and describe its modules, with ``top`` as the top module.

    Raises :class:`VerilogParseError` (a :class:`ValueError`) with pyverilog's message if the
    text does not parse, and :class:`ValueError` naming ``top`` if no module of that name is
    defined (or for constructs this reader does not handle: non-constant widths, instance
    arrays, a module defined twice).
    """
    top = _plain(top)
    source = _parse(verilog)
    modules: dict[str, ModuleNetlist] = {}
    for node in source.description.definitions:
        if isinstance(node, vast.ModuleDef):
            module = _read_module(node)
            if module.name in modules:
                raise ValueError(f"module {module.name!r} is defined twice")
            modules[module.name] = module
    if top not in modules:
        known = ", ".join(repr(n) for n in modules) or "none"
        raise ValueError(f"module {top!r} is not defined in the Verilog text "
                         f"(modules: {known})")
    return Netlist(top=top, modules=modules)


# -- parsing ------------------------------------------------------------------------------------

_PARSER: VerilogParser | None = None
_PARSER_LOCK = threading.Lock()

# Escaped identifiers, strings and comments are skipped whole, so that only real attributes
# (``(* ... *)``, not ``@(*)``) are blanked.
_STRING = r'"(?:\\.|[^"\\\n])*"'
_ATTRIBUTE = rf'\(\*(?!\))(?:{_STRING}|[^"])*?\*\)'
_TOKENS = re.compile(rf'\\\S+|{_STRING}|//[^\n]*|/\*.*?\*/|{_ATTRIBUTE}', re.S)


def _strip_attributes(text: str) -> str:
    def blank(match: re.Match) -> str:
        s = match.group()
        return re.sub(r"[^\n]", " ", s) if s.startswith("(*") else s
    return _TOKENS.sub(blank, text)


def _parse(text: str) -> vast.Source:
    global _PARSER
    stripped = _strip_attributes(text)
    with _PARSER_LOCK:
        if _PARSER is None:
            with tempfile.TemporaryDirectory(prefix="pyverilog-") as tables:
                _PARSER = VerilogParser(outputdir=tables, debug=False)
        lexer = _PARSER.lexer
        lexer.reset_lineno()             # the lexer keeps counting lines across parses
        lexer.directives = []
        try:
            return _PARSER.parse(stripped)
        except ParseError as e:
            raise VerilogParseError(_parse_message(str(e), text)) from None


def _parse_message(message: str, text: str) -> str:
    message = " ".join(message.replace("None: ", "").split())
    found = re.search(r"line:(\d+)", message)
    lines = text.splitlines()
    if found and 1 <= int(found.group(1)) <= len(lines):
        near = " ".join(lines[int(found.group(1)) - 1].split())[:80]
        message += f" (in {near!r})"
    return f"cannot parse Verilog: {message}"


# -- one module ---------------------------------------------------------------------------------

def _plain(name: str) -> str:
    return name[1:] if name.startswith("\\") else name


def _read_module(node: vast.ModuleDef) -> ModuleNetlist:
    name = _plain(node.name)
    params: dict[str, int] = {}
    directions: dict[str, tuple[str, int]] = {}
    regs: dict[str, tuple[int, int | None]] = {}      # name -> (width, depth or None)
    header: list[str] = []

    def declare(var: vast.Node) -> None:
        if isinstance(var, vast.Parameter) and not isinstance(var, vast.Supply):
            params[_plain(var.name)] = _const(var.value, params, f"{var.name} in {name}")
        elif isinstance(var, vast.Input | vast.Output | vast.Inout):
            kind = type(var).__name__.lower()
            directions[_plain(var.name)] = (kind, _width(var, params, name))
        elif isinstance(var, vast.Reg):
            depth = None
            if var.dimensions is not None:
                depth = 1
                for length in var.dimensions.lengths:
                    depth *= _span(length, params, f"{var.name} in {name}")
            regs[_plain(var.name)] = (_width(var, params, name), depth)

    for item in _walk(node.paramlist, vast.Decl) if node.paramlist else ():
        for var in item.list:
            declare(var)
    for port in node.portlist.ports if node.portlist else ():
        if isinstance(port, vast.Ioport):           # ANSI style: ``input [3:0] x``
            header.append(_plain(port.first.name))
            for var in (port.first, port.second):
                if var is not None:
                    declare(var)
        else:
            header.append(_plain(port.name))
    for item in (d for i in node.items for d in _walk(i, vast.Decl)):
        for var in item.list:
            declare(var)

    clocked: set[str] = set()
    for always in _walk(node, vast.Always):
        if _has_edge(always.sens_list):
            for sub in _walk(always.statement, vast.Substitution):
                clocked.update(_targets(sub.left))

    ports: dict[str, Port] = {}
    for port_name in header:
        if port_name not in directions:
            raise ValueError(f"port {port_name!r} of module {name!r} has no direction")
        ports[port_name] = Port(port_name, *directions[port_name])
    submodules: dict[str, str] = {}
    for inst_list in _walk(node, vast.InstanceList):
        for inst in inst_list.instances:
            if inst.array is not None:
                raise ValueError(f"instance array {inst.name!r} in module {name!r} "
                                 "is not supported")
            submodules[_plain(inst.name)] = _plain(inst.module)
    return ModuleNetlist(
        name=name,
        ports=ports,
        registers={r: w for r, (w, d) in regs.items() if d is None and r in clocked},
        memories={r: (w, d) for r, (w, d) in regs.items() if d is not None},
        submodules=submodules,
    )


def _walk(node: vast.Node, kind: type) -> Iterator:
    """Nodes of type ``kind`` under ``node`` in text order (not inside functions or tasks)."""
    stack = [node]
    while stack:
        n = stack.pop()
        if isinstance(n, kind):
            yield n
            continue
        if isinstance(n, vast.Function | vast.Task):
            continue
        stack.extend(reversed([c for c in n.children() if c is not None]))


def _has_edge(sens_list: vast.SensList | None) -> bool:
    return sens_list is not None and any(s.type in ("posedge", "negedge") for s in sens_list.list)


def _targets(lvalue: vast.Node) -> Iterator[str]:
    """Names of the variables an assignment writes (through selects and concatenations)."""
    node = lvalue.var if isinstance(lvalue, vast.Lvalue) else lvalue
    if isinstance(node, vast.Identifier):
        yield _plain(node.name)
    elif isinstance(node, vast.Pointer | vast.Partselect):
        yield from _targets(node.var)
    elif isinstance(node, vast.Concat):
        for part in node.list:
            yield from _targets(part)


def _width(var: vast.Variable, params: dict[str, int], module: str) -> int:
    return 1 if var.width is None else _span(var.width, params, f"{var.name} in {module}")


def _span(width: vast.Width, params: dict[str, int], what: str) -> int:
    return abs(_const(width.msb, params, what) - _const(width.lsb, params, what)) + 1


_BINARY = {
    vast.Plus: lambda a, b: a + b, vast.Minus: lambda a, b: a - b,
    vast.Times: lambda a, b: a * b, vast.Divide: lambda a, b: a // b,
    vast.Power: lambda a, b: a ** b,
}


def _const(node: vast.Node, params: dict[str, int], what: str) -> int:
    """Value of a constant integer expression (integers, parameters, + - * / ** and -x)."""
    if isinstance(node, vast.Rvalue):
        return _const(node.var, params, what)
    if isinstance(node, vast.IntConst):
        return _int_literal(node.value, what)
    if isinstance(node, vast.Identifier) and _plain(node.name) in params:
        return params[_plain(node.name)]
    if isinstance(node, vast.Uminus):
        return -_const(node.right, params, what)
    op = _BINARY.get(type(node))
    if op is not None:
        return op(_const(node.left, params, what), _const(node.right, params, what))
    raise ValueError(f"width of {what} is not a constant expression: {node!r}")


def _int_literal(text: str, what: str) -> int:
    text = text.replace("_", "").lower()
    if "'" not in text:
        return int(text)
    digits = text.split("'", 1)[1].lstrip("s")
    base = {"d": 10, "h": 16, "o": 8, "b": 2}.get(digits[:1])
    try:
        return int(digits[1:], base) if base else int(digits)
    except ValueError:
        raise ValueError(f"width of {what} uses a non-integer literal {text!r}") from None
