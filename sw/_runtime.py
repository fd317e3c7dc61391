"""How ``sw``'s Triton kernels run, decided once, before any kernel is defined.

Every module of ``sw`` that defines a ``@triton.jit`` kernel imports this module before its
kernels: without a visible CUDA GPU (and unless the user set ``TRITON_INTERPRET``), it sets
``TRITON_INTERPRET=1``, so triton builds those kernels as interpreter functions that run on the
CPU. :mod:`sw.roofline` does not import it (and so neither torch nor triton).
"""

from __future__ import annotations

import os
import sys

import torch

__all__ = ["INTERPRETED", "kernel_device"]

if "TRITON_INTERPRET" not in os.environ and not torch.cuda.is_available():
    if "triton.language" in sys.modules:
        raise ImportError("no CUDA GPU, but triton was imported before sw could select its "
                          "interpreter: import sw's kernels first, or set TRITON_INTERPRET=1")
    os.environ["TRITON_INTERPRET"] = "1"

#: True when kernels run in Triton's interpreter (no GPU, or the user asked for it).
INTERPRETED: bool = os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def kernel_device() -> torch.device:
    """Where the kernels take their tensors: the GPU when compiled for one, else the CPU."""
    return torch.device("cpu" if INTERPRETED else "cuda")
