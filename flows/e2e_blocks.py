"""The e2e run's error per block (:func:`block_errors`): a model's blocks are the entries of
its ``nn.ModuleList`` containers (Llama's ``layers``, FLUX.1's ``double_blocks`` and
``single_blocks``, Sana's ``blocks``, VILA-U's ``llm`` and ``depth``), found from the module
tree, not from names. Each run records every block call's first tensor output
(:func:`recording`); a block call ``path#n`` (its ``n``-th call) of the accelerator run is
compared with the same call of the float run: the max abs difference and that relative to the
float output's max abs. Each block's error includes the errors of the blocks before it (the
chain's inputs differ); the per-call bounds are on the records.

Layer: flows.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

__all__ = ["block_errors", "block_line", "blocks_of", "recording"]


def blocks_of(model) -> list[tuple[str, object]]:
    """``(path, module)`` of every entry of an ``nn.ModuleList`` of ``model``, in module
    order."""
    import torch

    return [(f"{path}.{i}" if path else str(i), child)
            for path, mod in model.named_modules() if isinstance(mod, torch.nn.ModuleList)
            for i, child in enumerate(mod)]


@contextmanager
def recording(model, into: list[tuple[str, np.ndarray]]) -> Iterator[None]:
    """While the block runs, every block call of ``model`` appends ``("path#n", its first
    tensor output as float32 numpy)`` to ``into``."""
    import torch

    calls: dict[str, int] = {}

    def hook(path: str):
        def record(_module, _args, out) -> None:
            outs = out if isinstance(out, tuple | list) else (out,)
            first = next((o for o in outs if torch.is_tensor(o)), None)
            if first is not None:
                calls[path] = calls.get(path, 0) + 1
                into.append((f"{path}#{calls[path]}",
                             first.detach().to(torch.float32).numpy().copy()))
        return record

    handles = [mod.register_forward_hook(hook(path)) for path, mod in blocks_of(model)]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def block_errors(got: list[tuple[str, np.ndarray]], ref: list[tuple[str, np.ndarray]]
                 ) -> tuple[tuple[str, float, float], ...]:
    """``(block call, max abs error, relative)`` of each block call of ``got`` against the
    same call of ``ref``; ``ValueError`` when the two runs called different blocks."""
    if [n for n, _ in got] != [n for n, _ in ref]:
        raise ValueError(f"the runs called different blocks: {[n for n, _ in got][:5]} vs "
                         f"{[n for n, _ in ref][:5]}")
    out = []
    for (name, g), (_, r) in zip(got, ref, strict=True):
        err = float(np.abs(g - r).max(initial=0.0))
        scale = float(np.abs(r).max(initial=0.0)) or 1.0
        out.append((name, err, err / scale))
    return tuple(out)


def block_line(blocks: tuple[tuple[str, float, float], ...]) -> str:
    """One line of :func:`block_errors`' relative errors, a block call each."""
    return "error per block (relative, accelerator vs float): " + ", ".join(
        f"{name} {rel:.1e}" for name, _, rel in blocks)
