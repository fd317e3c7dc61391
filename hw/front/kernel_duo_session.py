"""A DuoAttention KV head serving a generation on the accelerator (:class:`HeadSession`): its
int8 codes arrive a chunk at a time (a chunked prefill, then decode steps of one token) while
its KV cache stays in the accelerator's memories from program to program, on one reference
machine:

* **streaming** (a ``(sink, recent)`` window): the ring cache of ``sink + recent`` slots
  resident in the scratchpad (:mod:`hw.front.kernel_duo`); a chunk of ``C`` tokens runs as
  steps of the largest chunk ``c <= C`` that fits, each laid out for its own ``c`` (the
  cache's scratchpad rows depend on the window only, so every layout finds it in place), as
  :mod:`mapping.accel_attention` lowers a streaming op of ``C`` queries;
* **retrieval** (no window): keys and values appended to the head's cache in DRAM, read back
  by :mod:`hw.front.kernel_duo_long`'s query tiles (:func:`query_tiling`) over the keys
  ``0 .. L + C - 1``, causal.

Per :meth:`HeadSession.step` of ``C`` tokens at positions ``L .. L + C - 1`` (codes ``q``
``(G, C, D)``, ``k`` ``(C, D)``, ``v`` ``(C, Dv)``) the host writes the codes into DRAM rows
of their own (a streaming head's q, k, v rows at their positions; a retrieval head's keys and
values at rows ``L ..`` of the cache, its queries and outputs in blocks of the step), the
step's program runs, and the outputs ``(G, C, Dv)`` (the normalizer's codes) are read back.

**Replay.** The host writes only rows that no earlier program read and that no program
writes, so :attr:`HeadSession.programs` (every step's program, in order, after the reset)
run from :attr:`HeadSession.dram_in` (DRAM as the host wrote it, the outputs still zero)
ends in the machine's DRAM: what an RTL check of the head's whole life runs.

:meth:`HeadSession.cache` reads the cache back from the memories: ``(positions, k, v)`` in
the order the kernels read it (streaming: slot order, ``-1`` for an empty slot; retrieval:
positions ``0 .. L - 1``), for golden's caches (:mod:`golden.attention_cache_fixed`) to
check.

Layer: hw.front, the planning layer (plain Python, no Amaranth).
"""

from __future__ import annotations

import numpy as np

from golden.attention_cache_fixed import ring_address

from .arch import ArchSpec
from .isa import Instruction
from .isa_machine import Machine, pack, unpack
from .kernel_chain import blocks, unit_command
from .kernel_duo import DuoHead, DuoSteps, duo_step_program, duo_steps
from .kernel_duo_long import long_attention_program, query_tiles, query_tiling, tile_addresses
from .spec_model import SpecError

__all__ = ["HeadSession"]


class HeadSession:
    """One KV head of ``g`` query heads (keys of ``d``, values of ``dv``) over at most
    ``capacity`` tokens on ``arch``'s reference machine (module docstring); ``window`` the
    ``(sink, recent)`` of a streaming head, ``None`` for a retrieval head; the logit
    multiplier ``mult`` and ``shift`` fixed for the session. ``SpecError`` when a unit is
    missing or the head does not fit the memories."""

    def __init__(self, arch: ArchSpec, g: int, capacity: int, d: int, dv: int, mult: int,
                 shift: int, window: tuple[int, int] | None = None, kv: int = 0) -> None:
        for name, val in (("g", g), ("capacity", capacity), ("d", d), ("dv", dv)):
            if isinstance(val, bool) or not isinstance(val, int) or val < 1:
                raise ValueError(f"{name} must be a positive int, got {val!r}")
        self.arch, self.g, self.capacity, self.d, self.dv = arch, g, capacity, d, dv
        self.mult, self.shift, self.window, self.kv = mult, shift, window, kv
        self.length = 0
        #: every program run so far, in order (the first: the streaming cache's reset)
        self.programs: list[list[Instruction]] = []
        self._heads: dict[int, DuoSteps] = {}
        if window is not None:
            head = self._steps(1)
            self.addr = head.addr
            self.machine = Machine(arch, head.addr[4])
            self._run([unit_command("kv_cache", "reset", src=window[0], dst=window[1],
                                    rows=1, kv=kv)])
        else:
            for unit in ("requant", "softmax", "normalizer"):
                if getattr(arch.units, unit) is None:
                    raise SpecError(f"architecture {arch.name!r} has no {unit} unit; a "
                                    "retrieval head needs requant, softmax and normalizer")
            self.addr = tile_addresses(g, capacity, capacity, d, dv)
            self.machine = Machine(arch, self.addr[4] + g * capacity * dv * self._out_bytes)
            self.machine.write_dram(self.addr[3], pack(np.ones(1, np.int64), arch.types[0]))
        #: DRAM as the host wrote it: what a replay of :attr:`programs` starts from
        self.dram_in = bytearray(self.machine.dram.tobytes())

    @property
    def _out_bytes(self) -> int:
        return self.arch.types[2].bits // 8

    def _steps(self, chunk: int) -> DuoSteps:
        """The streaming head laid out for chunks of ``chunk`` (memoized)."""
        if chunk not in self._heads:
            sink, recent = self.window
            head = duo_steps(self.arch, self.g, self.capacity, self.d, self.dv, self.mult,
                             self.shift, sink, recent, max_chunk=chunk, kv=self.kv)
            first = next(iter(self._heads.values()), head)
            lay, base = head.lay, first.lay
            if (lay.kt, lay.v, lay.slots) != (base.kt, base.v, base.slots):
                raise AssertionError("the ring cache's rows moved with the chunk")
            self._heads[chunk] = head
        return self._heads[chunk]

    def _write(self, addr: int, codes: np.ndarray) -> None:
        data = pack(np.ascontiguousarray(codes), self.arch.types[0])
        self.machine.write_dram(addr, data)
        self.dram_in[addr:addr + len(data)] = data

    def _run(self, program: list[Instruction]) -> None:
        self.machine.run(program)
        self.programs.append(program)

    def step(self, q: np.ndarray, k: np.ndarray, v: np.ndarray) -> np.ndarray:
        """The next ``C`` tokens (module docstring); their outputs, int64 ``(G, C, Dv)``."""
        q, k, v = (np.asarray(x, dtype=np.int64) for x in (q, k, v))
        c = k.shape[0] if k.ndim == 2 else 0
        if q.shape != (self.g, c, self.d) or k.shape != (c, self.d) or v.shape != (c, self.dv) \
                or c < 1:
            raise ValueError(f"q {q.shape}, k {k.shape}, v {v.shape}: expected ({self.g}, C, "
                             f"{self.d}), (C, {self.d}), (C, {self.dv}), C >= 1")
        if self.length + c > self.capacity:
            raise ValueError(f"{c} more tokens after {self.length} overflow the session's "
                             f"capacity of {self.capacity}")
        program = self._streaming(q, k, v) if self.window else self._retrieval(q, k, v)
        self._run(program)
        out = self._outputs(c)
        self.length += c
        return out

    def _streaming(self, q: np.ndarray, k: np.ndarray, v: np.ndarray) -> list[Instruction]:
        """The chunk's codes at their positions; its steps' programs."""
        (c, d), at, t = k.shape, self.length, self.capacity
        for gi in range(self.g):
            self._write(self.addr[0] + (gi * t + at) * d, q[gi])
        self._write(self.addr[1] + at * d, k)
        self._write(self.addr[2] + at * self.dv, v)
        chunk = DuoHead.largest_chunk(self.arch, self.g, t, d, self.dv, self.window, limit=c)
        if not chunk:
            raise SpecError(f"a step of one token of {self.g} query heads over "
                            f"{sum(self.window)} slots does not fit {self.arch.name!r}")
        return [ins for s0, sn in blocks(c, chunk)
                for ins in duo_step_program(self.arch, self._steps(chunk), at + s0, sn)]

    def _retrieval(self, q: np.ndarray, k: np.ndarray, v: np.ndarray) -> list[Instruction]:
        """The chunk appended to the DRAM cache, its queries in the step's block; the
        query tiles' programs."""
        (c, d), at, (g, dv) = k.shape, self.length, (self.g, self.dv)
        qa, ka, va, ones, out = self.addr
        self._write(qa + g * at * d, q)
        self._write(ka + at * d, k)
        self._write(va + at * dv, v)
        tile, kb = query_tiling(self.arch, g, d, dv, c)
        if not kb:
            raise SpecError(f"a query tile of {g} heads, d={d}, dv={dv} does not fit "
                            f"{self.arch.name!r}'s memories")
        tiles = query_tiles(g, c, at + c, d, dv, self.mult, self.shift, tile, kb, True,
                            (qa + g * at * d, ka, va, ones, out + g * at * dv * self._out_bytes))
        return [ins for t in tiles for ins in long_attention_program(self.arch, t)]

    def _outputs(self, c: int) -> np.ndarray:
        """The step's outputs (G, c, Dv) from DRAM."""
        ob, c_t, (g, dv, at) = self._out_bytes, self.arch.types[2], (self.g, self.dv,
                                                                     self.length)
        if self.window is None:
            base = self.addr[4] + g * at * dv * ob
            return unpack(self.machine.read_dram(base, g * c * dv * ob), g * c * dv,
                          c_t).reshape(g, c, dv)
        rows = [unpack(self.machine.read_dram(self.addr[3] + (gi * self.capacity + at) * dv * ob,
                                              c * dv * ob), c * dv, c_t).reshape(c, dv)
                for gi in range(g)]
        return np.stack(rows)

    def cache(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(positions, k codes, v codes)`` of the cache as the memories hold it (module
        docstring), int64."""
        if self.window is None:
            n, a = self.length, self.arch.types[0]
            k = unpack(self.machine.read_dram(self.addr[1], n * self.d), n * self.d, a)
            v = unpack(self.machine.read_dram(self.addr[2], n * self.dv), n * self.dv, a)
            return np.arange(n), k.reshape(n, self.d), v.reshape(n, self.dv)
        sink, recent = self.window
        lay, sp = self._steps(1).lay, self.machine.scratchpad
        e, slots = lay.edge, sink + recent
        positions = np.full(slots, -1, dtype=np.int64)
        for pos in range(self.length):
            positions[ring_address(pos, sink, recent)] = pos
        k = np.stack([sp[lay.kt + (s // e) * self.d:lay.kt + (s // e + 1) * self.d, s % e]
                      for s in range(slots)])
        v = np.concatenate([sp[lay.v + b * lay.slots:lay.v + b * lay.slots + slots, :en]
                            for b, (_, en) in enumerate(blocks(self.dv, e))], axis=1)
        return positions, k, v
