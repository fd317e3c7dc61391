"""Verilog emission: deterministic text (no source paths), written atomically.

Layer: hw.rtl, the Amaranth layer.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from amaranth.back import verilog
from amaranth.lib import wiring

__all__ = ["to_verilog", "write_text_atomic"]


def to_verilog(component: wiring.Component, name: str) -> str:
    """Verilog of ``component`` as top module ``name``.

    Source locations are not emitted, so the text depends only on the design: the same spec
    gives byte-identical Verilog in any checkout. A component with a ``domain`` attribute (a
    reset-less :class:`ClockDomain` it adds itself) gets that domain's clock as port ``clk``;
    one with ``verilog_dependencies()`` gets those modules' Verilog appended.
    """
    if not name.isidentifier():
        raise ValueError(f"module name must be a Verilog identifier, got {name!r}")
    domain = getattr(component, "domain", None)
    if domain is None:
        text = verilog.convert(component, name=name, emit_src=False)
    else:
        # A component that brings its own (reset-free) clock domain exposes only its clock.
        ports = [value for _, _, value in component.signature.flatten(component)]
        text = verilog.convert(component, name=name, emit_src=False,
                               ports=[domain.clk, *ports])
    deps = getattr(component, "verilog_dependencies", None)
    return text + "".join(deps()) if deps is not None else text


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary file and a rename (no half-written file)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
