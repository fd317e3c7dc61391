"""Roofline estimates of the sw/ workloads at paper scale on named GPUs.

Each kernel is a :class:`KernelCost` (operations at a precision, DRAM bytes moved); its time
on a :class:`Device` is ``max(ops / peak(precision), bytes / bandwidth)``, a kernel sequence
the sum. These are estimates for planning (no caches beyond one kernel, no launch overhead,
peaks that real kernels reach only in part); where a GPU exists, measured times replace them.

Device figures (dense tensor-core peaks): H100 SXM5 — NVIDIA's H100 datasheet: 3.35 TB/s HBM3,
989 TFLOPS FP16/BF16, 1979 TOPS INT8 and FP8, no INT4 tensor cores (workloads.md).
RTX 4090 Laptop (AD103, 140 W) — published spec sheets: 576 GB/s GDDR6, 75.9 TFLOPS FP16 with
FP32 accumulation, 303.5 TOPS INT8, 607 TOPS INT4.
A100 SXM4 80GB — NVIDIA's A100 datasheet (nvidia-a100-datasheet-us-nvidia-1758950-r4): 2,039 GB/s
HBM2e, 312 TFLOPS FP16/BF16, 624 TOPS INT8, 1,248 TOPS INT4 (dense; twice that with 2:4
sparsity), 19.5 TFLOPS FP32 (non-tensor), no FP8 tensor cores (Ampere).
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["DEVICES", "Device", "KernelCost", "duo_decode_costs", "linear_attention_costs",
           "sequence_time", "svdquant_costs"]


@dataclass(frozen=True)
class Device:
    name: str
    bandwidth: float                     #: DRAM bytes per second
    peaks: dict[str, float] = field(default_factory=dict)   #: precision -> ops per second

    def peak(self, precision: str) -> tuple[float, str]:
        """(ops/s, precision actually used): a missing int4 runs as int8 (codes unpacked)."""
        if precision in self.peaks:
            return self.peaks[precision], precision
        if precision == "int4" and "int8" in self.peaks:
            return self.peaks["int8"], "int8"
        raise ValueError(f"{self.name} has no {precision} peak (has {sorted(self.peaks)})")


DEVICES: dict[str, Device] = {
    "H100": Device("H100 SXM5", 3.35e12,
                   {"fp16": 989e12, "fp32": 67e12, "int8": 1979e12, "fp8": 1979e12}),
    "RTX4090-laptop": Device("RTX 4090 Laptop", 576e9,
                             {"fp16": 75.9e12, "fp32": 37.9e12, "int8": 303.5e12,
                              "int4": 607e12, "fp8": 151.8e12}),
    "A100": Device("A100 SXM4 80GB", 2.039e12,
                   {"fp16": 312e12, "fp32": 19.5e12, "int8": 624e12, "int4": 1248e12}),
}


@dataclass(frozen=True)
class KernelCost:
    name: str
    ops: float
    bytes: float
    precision: str = "fp16"

    def time(self, device: Device) -> float:
        peak, _ = device.peak(self.precision)
        return max(self.ops / peak, self.bytes / device.bandwidth)

    def bound(self, device: Device) -> str:
        peak, _ = device.peak(self.precision)
        return "compute" if self.ops / peak >= self.bytes / device.bandwidth else "memory"


def sequence_time(costs: list[KernelCost], device: Device) -> float:
    return sum(c.time(device) for c in costs)


def svdquant_costs(m: int, n: int, k: int, rank: int = 32, group: int = 64,
                   fused: bool = True) -> list[KernelCost]:
    """W4A4 layer ``Y = X W^T`` with the rank-r branch, fused (Nunchaku-style) or not.

    fp16 activations and outputs, int4 codes, one fp16 scale per 64-group, fp32 lora_act.
    Fused: (1) quantize X + lora_down in one pass, (2) W4A4 GEMM with lora_up + bias in the
    epilogue, Y written once. Unfused: quantize, a separate lora_down GEMM (reads X again),
    the W4A4 GEMM, a separate lora_up GEMM that reads Y and writes it again.
    """
    x16, y16 = m * k * 2, m * n * 2
    xq = m * k / 2 + m * k / group * 2
    wq = n * k / 2 + n * k / group * 2
    down, up, act = rank * k * 2, n * rank * 2, m * rank * 4
    main = 2.0 * m * n * k
    if fused:
        return [
            KernelCost("quantize_act + lora_down", 2.0 * m * k * rank, x16 + down + xq + act),
            KernelCost("w4a4_gemm + lora_up", main, xq + wq + act + up + y16, "int4"),
        ]
    return [
        KernelCost("quantize_act", 0.0, x16 + xq),
        KernelCost("lora_down gemm", 2.0 * m * k * rank, x16 + down + act),
        KernelCost("w4a4_gemm", main, xq + wq + y16, "int4"),
        KernelCost("lora_up gemm (+= Y)", 2.0 * m * n * rank, act + up + 2 * y16),
    ]


def linear_attention_costs(tokens: int, heads: int, head_dim: int,
                           batch: int = 1) -> list[KernelCost]:
    """Sana LiteLA core (ReLU, vk accumulation, vk q, divide), fp16 in/out, fp32 math."""
    d = head_dim
    qkv = 3 * batch * heads * tokens * d * 2
    out = batch * heads * tokens * d * 2
    vk = batch * heads * (d + 1) * d * 4
    return [
        KernelCost("accumulate v^T relu(k)", 2.0 * batch * heads * tokens * d * (d + 1),
                   2 * qkv / 3 + vk, "fp32"),
        KernelCost("(vk) relu(q) / norm", 2.0 * batch * heads * tokens * d * (d + 1),
                   qkv / 3 + vk + out, "fp32"),
    ]


def duo_decode_costs(context: int, layers: int = 32, q_heads: int = 32, kv_heads: int = 8,
                     head_dim: int = 128, retrieval_fraction: float = 0.5, sink: int = 64,
                     recent: int = 256, bytes_per_element: int = 2,
                     duo: bool = True) -> list[KernelCost]:
    """Attention of one decode token over a KV cache, all layers (Llama-3-8B defaults).

    Retrieval KV heads read the whole context; streaming heads read sink + recent only.
    """
    if not 0 <= retrieval_fraction <= 1:
        raise ValueError(f"retrieval_fraction must be in [0, 1], got {retrieval_fraction}")
    retrieval = round(kv_heads * retrieval_fraction) if duo else kv_heads
    streaming = kv_heads - retrieval
    window = min(context, sink + recent)
    tokens_read = retrieval * context + streaming * window
    group = q_heads // kv_heads
    kv_bytes = layers * tokens_read * head_dim * 2 * bytes_per_element
    ops = layers * group * tokens_read * head_dim * 4.0    # q.k and p.v, 2 ops per MAC
    return [KernelCost("decode attention (all layers)", ops, kv_bytes, "fp16")]
