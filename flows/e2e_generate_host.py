"""The host's operators of a generation (:mod:`flows.e2e_generate`), costed as
:mod:`flows.e2e_host` costs a forward's (:func:`generation_host_records`).

A generation is forwards of ``c`` tokens at position ``p`` (the prompt's chunks, then one
token a step). Each forward's operators are those of the DuoAttention twin built for it
(the same dims and heads: ``phase="prefill"`` with ``chunk = c`` ending at ``context = p +
c``, or ``"decode"`` for one token), imported with the fx importer
(:func:`flows.e2e_host.placed_ops`) and placed by the generation's rule: every ``nn.Linear``
and every DuoAttention contraction (prefill chunks too: the head sessions run them) is the
accelerator's; the rest (embedding, norms, RoPE, SwiGLU, residual adds, KV-cache writes) is
the host's, costed by :func:`flows.e2e_host.host_record`. Costs depend on shapes and
formats only, not on weights or token values. Records are named ``<name>@<p>+<c>``, as the
heads' records are.

Layer: flows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from hw.front.arch import ArchSpec

from .e2e_host import HostRecord, host_record, placed_ops

__all__ = ["generation_host_records", "on_accelerator_in_generation"]


def on_accelerator_in_generation(module: Any, arch: ArchSpec) -> bool:
    """The generation's rule: every ``nn.Linear`` and DuoAttention leaf is routed to
    ``arch``'s accelerator (``arch`` unused: :func:`~flows.e2e_generate.run_generate`
    already requires the attention units)."""
    import torch

    from mapping.torch_attention import DuoAttention

    return isinstance(module, torch.nn.Linear | DuoAttention)


def generation_host_records(name: str, arch: ArchSpec, forwards: Sequence[tuple[int, int]],
                            retrieval_heads: int) -> tuple[HostRecord, ...]:
    """A :class:`HostRecord` per host operator of every forward ``(p, c)`` of twin ``name``
    with ``retrieval_heads`` full KV heads a layer, in order (module docstring)."""
    from mapping.torch_models import TORCH_TWINS

    out: list[HostRecord] = []
    for pos, c in forwards:
        phase = "decode" if c == 1 else "prefill"
        model, inputs = TORCH_TWINS[name](phase=phase, context=pos + c, chunk=c,
                                          retrieval_heads=retrieval_heads)
        for p in placed_ops(model.float().eval(), inputs, arch, on_accelerator_in_generation):
            if not p.accel:
                out.append(replace(host_record(arch, p.name, p.op), name=f"{p.name}@{pos}+{c}"))
    return tuple(out)
