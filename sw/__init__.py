"""sw: Triton reference kernels with the semantics of the ``golden`` entry points.

Importing this package decides how kernels run: when no CUDA GPU is visible (and the user has not
chosen), ``TRITON_INTERPRET=1`` is set here, before any ``@triton.jit`` kernel in ``sw`` is
defined, so the kernels run in Triton's CPU interpreter without the user setting anything.
"""

import os as _os


def _gpu_present() -> bool:
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a hard dependency
        return False
    return bool(torch.cuda.is_available())


if "TRITON_INTERPRET" not in _os.environ and not _gpu_present():
    _os.environ["TRITON_INTERPRET"] = "1"

#: True when kernels run in Triton's interpreter (no GPU, or the user asked for it).
INTERPRETED: bool = _os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")
