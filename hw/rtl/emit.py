"""Spec -> Verilog: deterministic text (no source paths), written atomically.

Layer: hw.rtl, the Amaranth layer.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

from amaranth.back import verilog
from amaranth.hdl import ClockDomain, Fragment, ValueCastable
from amaranth.hdl._ir import PortDirection
from amaranth.lib import wiring

from ..front.fusion import plan_fused
from ..front.plan import ArrayPlan
from ..front.spec import DesignSpec
from ..ir.backend import BackendOptions
from .generate import GeneratedArray

__all__ = ["Emission", "emit_design", "module_names", "strip_memory_init", "to_verilog",
           "write_text_atomic"]

_MODULE_RE = re.compile(r"^\s*module\s+(\\\S+|[A-Za-z_][\w$]*)", re.M)
_MEMORY_INIT_RE = re.compile(r"^  initial begin\n"
                             r"(?:    [\\\w$.]+\[\d+\] = \d+'[bdh][0-9a-fA-F_]+;\n)+  end\n", re.M)


def strip_memory_init(text: str) -> str:
    """``text`` without the per-word ``initial`` blocks Yosys writes for memories (an
    SRAM's contents are not part of the design; simulators start them at zero)."""
    return _MEMORY_INIT_RE.sub("", text)


def module_names(text: str) -> list[str]:
    """Names of the modules ``text`` defines, in order (escaped names keep their ``\\``)."""
    return _MODULE_RE.findall(text)


def _reset_less(name: str) -> ClockDomain:
    return ClockDomain(name, reset_less=True)


def _dependencies(fragment: Fragment) -> list[str]:
    """``verilog_dependencies()`` of every elaboratable in the hierarchy under ``fragment``,
    depth first in elaboration order."""
    found, stack = [], [fragment]
    while stack:
        frag = stack.pop()
        for origin in frag.origins or ():
            deps = getattr(origin, "verilog_dependencies", None)
            if deps is not None:
                found.extend(deps())
        stack.extend(sub for sub, _, _ in reversed(frag.subfragments))
    return found


def to_verilog(component: wiring.Component, name: str) -> str:
    """Verilog of ``component`` as top module ``name``.

    Source locations are not emitted, so the text depends only on the design: the same spec
    gives byte-identical Verilog in any checkout. A clock domain the component uses but does
    not define (a :class:`~hw.rtl.generate.GeneratedArray` runs in its parent's ``sync``) is
    supplied here, reset-less: the top gets its clock as a port (``clk`` for ``sync``) and no
    reset port. The Verilog of the modules that elaboratables anywhere in the hierarchy
    instantiate (their ``verilog_dependencies()``) is appended once each; two different
    modules of one name raise ``ValueError``.
    """
    if not name.isidentifier():
        raise ValueError(f"module name must be a Verilog identifier, got {name!r}")
    ports = {}
    for path, member, value in component.signature.flatten(component):
        if isinstance(value, ValueCastable):
            value = value.as_value()
        direction = PortDirection.Input if member.flow == wiring.In else PortDirection.Output
        ports["__".join(map(str, path))] = (value, direction)
    fragment = Fragment.get(component, None)
    deps = _dependencies(fragment)
    text, _ = verilog.convert_fragment(fragment, ports, name, emit_src=False,
                                       missing_domain=_reset_less)
    defined = {m: text for m in module_names(text)}
    for dep in dict.fromkeys(deps):         # identical texts: one module, emitted once
        for module in module_names(dep):
            if module in defined:
                raise ValueError(f"two different Verilog modules named {module!r} in {name}")
            defined[module] = dep
        text += dep
    return text


class Emission(NamedTuple):
    """What :func:`emit_design` returns."""

    plans: list[ArrayPlan]      #: one plan per spec (jointly planned when fused)
    top: GeneratedArray         #: elaborated (its ``register_bits`` are filled in)
    verilog: str


def emit_design(specs: Sequence[DesignSpec], *, fu_style: str = "instance",
                backend: BackendOptions | None = None) -> Emission:
    """Plan, elaborate and emit the design of ``specs`` (top module named after the first).

    ``specs`` is always a sequence: one spec for a single-dataflow array, several for a fused
    one (one array, a dataflow per spec, see :func:`hw.front.fusion.plan_fused`).
    ``backend``: emit the datapath from the optimized primitive graph (:mod:`hw.ir.backend`).
    """
    if isinstance(specs, DesignSpec) or not isinstance(specs, Sequence):
        raise TypeError(f"emit_design takes a sequence of DesignSpecs (e.g. [spec]), got "
                        f"{type(specs).__name__}")
    if not specs:
        raise ValueError("emit_design needs at least one spec")
    plans = plan_fused(list(specs))
    top = GeneratedArray(plans, fu_style=fu_style, backend=backend)
    return Emission(plans, top, to_verilog(top, specs[0].name))


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary file and a rename (no half-written file).

    The file gets the permissions of any new file (``0o666`` less the process umask, applied
    by the kernel), not a temporary file's ``0o600``.
    """
    path = Path(path)
    while True:
        tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0),
                         0o666)
        except FileExistsError:
            continue
        break
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
