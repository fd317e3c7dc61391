"""mapping: whole generative models as operator graphs, to be scheduled onto a generated
accelerator or a GPU (the mapper, importer, GPU roofline and CLI build on this layer).

* :mod:`mapping.ir`: element formats with exact storage bytes (bf16 ... SVDQuant int4 with
  group scales, nvfp4), one frozen, validated dataclass per operator kind (``Linear``,
  ``Matmul``, ``Conv2d``, ``Elementwise``, ``Norm``, ``Attention``, ``LinearAttention``,
  ``KVCacheWrite``, ``KVCacheRead``, ``Embedding``) reporting MACs and bytes, and
  ``ModelGraph``: named stages with repeat counts, totals, a JSON round trip.
  (Implementation split over ``ir_format`` and ``ir_ops``; import from ``mapping.ir``.)
* :mod:`mapping.zoo`: FLUX.1-dev (SVDQuant), Sana-0.6B/1.6B, Llama-3-8B / Llama-2-7B with
  DuoAttention, VILA-U generation, each with a ``tiny-`` twin; ``model(name, **overrides)``.
* :mod:`mapping.ratios`: the seed papers' headline ratios recomputed from the IR.
* :mod:`mapping.mapper`: ``map_model(graph, arch=...)`` / ``(graph, device=...)``: every
  operator placed and costed (the precision policy :mod:`mapping.policy`, candidates from
  :mod:`mapping.accel_cost`, :mod:`mapping.accel_attention`, :mod:`mapping.decompose`,
  :mod:`mapping.host_cost`, :mod:`mapping.gpu_cost`), a :class:`mapping.schedule.Schedule`
  (table :mod:`mapping.report`, plots :mod:`mapping.plots`), lowered to programs for the tiny
  models (:mod:`mapping.lower`); energies from :mod:`mapping.energy`.
* :mod:`mapping.fx_import`: a ``torch.nn.Module`` to the IR (torch twins of the tiny models:
  :mod:`mapping.torch_models`); :mod:`mapping.gpu_run`: the GPU target run on the Triton
  kernels. These import torch; the rest of the package does not.

Importing this package imports neither torch nor numpy. Model facts and sources:
``docs/models.md``; the mapper, its costs and the measured comparison: ``docs/mapping.md``.
"""

from .ir import ModelGraph, Stage, Totals
from .zoo import DESCRIPTIONS, MODELS, model

__all__ = ["DESCRIPTIONS", "MODELS", "ModelGraph", "Stage", "Totals", "model"]
