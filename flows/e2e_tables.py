"""The e2e run's plain-text tables (for :mod:`flows.map_cli`): a line per accelerator call
(:func:`records_table`), per GPU kernel call (:func:`gpu_records_table`), columns aligned by
:func:`aligned`.

Layer: flows.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .e2e import E2ERun

__all__ = ["aligned", "gpu_records_table", "records_table"]


def records_table(run: E2ERun) -> str:
    """A line per accelerator call (a linear's ``m x k x n``, a linear-attention head's
    ``tokens x d x dv``): dataflow, cycles (model / RTL / mapper), DRAM bytes,
    utilization, bit-exact, error and bound."""
    rows = [("accelerator call", "shape", "dataflow", "model", "rtl", "mapper", "DRAM",
             "util", "exact", "err", "bound")]
    for op in run.ops:
        rows.append((op.name, "x".join(map(str, op.shape)), op.dataflow, str(op.model_cycles),
                     "-" if op.rtl_cycles is None else str(op.rtl_cycles),
                     str(op.mapper_cycles), str(op.dram_bytes), f"{op.utilization:.2f}",
                     "yes" if op.bit_exact else "NO", f"{op.err:.2e}",
                     f"{op.err_bound:.2e}"))
    return aligned(rows)


def gpu_records_table(run: E2ERun) -> str:
    """A line per GPU kernel call (:class:`flows.e2e_gpu.GpuRecord`): kernel, shape,
    launches, bit-exact (``-``: nothing bit-exact claimed), error and bound."""
    rows = [("gpu call", "kernel", "shape", "launches", "exact", "err", "bound")]
    for op in run.gpu_ops:
        rows.append((op.name, op.kernel, "x".join(map(str, op.shape)), str(op.launches),
                     {None: "-", True: "yes", False: "NO"}[op.bit_exact], f"{op.err:.2e}",
                     f"{op.err_bound:.2e}"))
    return aligned(rows)


def aligned(rows: list[tuple[str, ...]]) -> str:
    """``rows`` as left-aligned columns two spaces apart."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
                     for r in rows)

