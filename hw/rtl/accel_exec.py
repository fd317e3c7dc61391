"""The accelerator's execution unit: the array, its tile control and the accumulator's
read-modify-write, for every dataflow class (:mod:`hw.front.accel_params`).

One grid of ``E x E`` multipliers ``p[r][c] = x[r] * y[r][c]`` serves all classes: ``x`` is the
streamed scratchpad row (port X); class "k" (output-stationary) takes ``y[r][c] = `` the row
streamed on port Y and accumulates ``p`` in the FUs' registers, then drains them row by row;
classes "i" and "j" take ``y`` from one of two weight banks (the stationary operand, loaded
through port Y while the previous tile streams: by rows for "i", by columns for "j") and sum
each column, ``out[c] = sum_r p[r][c]`` (x masked to the tile's k), one result row per cycle.
Result rows enter the accumulator one cycle after they are formed: read in the token cycle
(transparent to the write port), added (``accumulate``) or replaced, written the next.

Timing (the contract :mod:`hw.front.accel_timing` models): see that module's docstring.

Layer: hw.rtl, the Amaranth layer.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal, signed, unsigned

from ..front.accel_params import CLASSES, AccelParams

__all__ = ["ExecUnit", "element", "elements"]

_K, _I, _J = (CLASSES.index(c) for c in ("k", "i", "j"))
_ADDR = 20
_EXT = 17


def element(vec, n: int, bits: int, is_signed: bool):
    """Element ``n`` of a packed row (element 0 in the low bits)."""
    v = vec[n * bits:(n + 1) * bits]
    return v.as_signed() if is_signed else v


def elements(vec, count: int, bits: int, is_signed: bool) -> list:
    return [element(vec, n, bits, is_signed) for n in range(count)]


def _tree(values: list):
    while len(values) > 1:
        values = [values[n] + values[n + 1] if n + 1 < len(values) else values[n]
                  for n in range(0, len(values), 2)]
    return values[0]


class _Slot:
    """A tile's fields as registers (``nxt`` or ``cur``)."""

    def __init__(self, name: str) -> None:
        self.valid = Signal(name=f"{name}_valid")
        self.a, self.b, self.c = (Signal(_ADDR, name=f"{name}_{f}") for f in "abc")
        self.i, self.j, self.k = (Signal(_EXT, name=f"{name}_{f}") for f in "ijk")
        self.acc = Signal(name=f"{name}_acc")
        self.na, self.nb, self.nc, self.nx, self.ns = (
            Signal(_EXT, name=f"{name}_n{f}") for f in ("a", "b", "c", "x", "s"))
        self.bank = Signal(name=f"{name}_bank")

    def fields(self) -> list[Signal]:
        return [self.a, self.b, self.c, self.i, self.j, self.k, self.acc, self.na, self.nb,
                self.nc, self.nx, self.ns, self.bank]


class ExecUnit:
    """Signals the dispatcher drives (``cls``, ``issue`` and ``inp``, a :class:`_Slot` of the
    tile to queue) and reads (``nxt``, ``cur``, ``streaming``, ``pending``, ``idle``);
    :meth:`elaborate_into` wires it to the memories' ports."""

    def __init__(self, p: AccelParams) -> None:
        self.p = p
        self.cls = Signal(2)
        self.issue = Signal()
        self.inp = _Slot("in")
        self.nxt = _Slot("nxt")
        self.cur = _Slot("cur")
        self.streaming = Signal()       #: cur reads the scratchpad
        self.pending = Signal(2)        #: result-write cycles left after a tile freed the array
        self.idle = Signal()

    def elaborate_into(self, m: Module, sp_x, sp_y, acc_r, acc_w) -> None:
        nxt, cur = self.nxt, self.cur
        # a read port's en is 1 unless driven: read only when the data is used
        m.d.comb += [sp_x.en.eq(0), sp_y.en.eq(0), acc_r.en.eq(0)]
        phase = Signal(2)               # 0 stream, 1 drain wait, 2 drain
        count = Signal(_EXT)
        loading_count = Signal(_EXT)
        loaded = Signal()
        next_bank = Signal()
        cls_k = self.cls == _K

        # -- queue, load, promote, stream ------------------------------------------------
        with m.If(self.issue):
            m.d.sync += [nxt.valid.eq(1), next_bank.eq(~next_bank), loaded.eq(0),
                         loading_count.eq(0)]
            m.d.sync += [d.eq(s) for d, s in zip(nxt.fields(), self.inp.fields(), strict=True)
                         if d is not nxt.bank]
            m.d.sync += nxt.bank.eq(next_bank)
        loading = nxt.valid & ~cls_k & ~loaded
        load_last = loading & (loading_count == nxt.ns - 1)
        l1_valid, l1_row, l1_bank = Signal(), Signal(_EXT), Signal()
        m.d.sync += [l1_valid.eq(loading), l1_row.eq(loading_count), l1_bank.eq(nxt.bank)]
        with m.If(loading):
            m.d.comb += [sp_y.en.eq(1),
                         sp_y.addr.eq(Mux(self.cls == _I, nxt.b, nxt.a) + loading_count)]
            m.d.sync += loading_count.eq(loading_count + 1)
            with m.If(load_last):
                m.d.sync += loaded.eq(1)

        stream_last = cur.valid & (phase == 0) & (count == cur.nx - 1)
        drain_last = cur.valid & (phase == 2) & (count == cur.i - 1)
        freeing = ~cur.valid | (stream_last & ~cls_k) | drain_last
        promote = nxt.valid & (cls_k | loaded | load_last) & freeing
        self._stream(m, sp_x, sp_y, acc_r, acc_w, phase, count, l1_valid, l1_row, l1_bank)
        with m.If((stream_last & ~cls_k) | drain_last):
            m.d.sync += [cur.valid.eq(0), self.pending.eq(Mux(cls_k, 1, 2))]
        with m.Elif(self.pending != 0):
            m.d.sync += self.pending.eq(self.pending - 1)
        with m.If(promote):
            m.d.sync += [cur.valid.eq(1), phase.eq(0), count.eq(0)]
            m.d.sync += [d.eq(s) for d, s in zip(cur.fields(), nxt.fields(), strict=True)]
            with m.If(~self.issue):
                m.d.sync += nxt.valid.eq(0)
        m.d.comb += [self.streaming.eq(cur.valid & (phase == 0)),
                     self.idle.eq(~nxt.valid & ~cur.valid & (self.pending == 0))]

    def _stream(self, m, sp_x, sp_y, acc_r, acc_w, phase, count, l1_valid, l1_row,
                l1_bank) -> None:
        p, e, cur = self.p, self.p.edge, self.cur
        a_signed, c_signed = p.arch.types[0].signed, p.arch.types[2].signed
        cls_k = self.cls == _K
        # stage 1 token (the cycle after a streamed read)
        t1_valid, t1_first, t1_bank, t1_acc = Signal(), Signal(), Signal(), Signal()
        t1_k, t1_ncols = Signal(_EXT), Signal(_EXT)
        t1_addr = Signal(_ADDR)
        m.d.sync += t1_valid.eq(0)
        with m.If(cur.valid & (phase == 0)):
            m.d.comb += [sp_x.en.eq(1),
                         sp_x.addr.eq(Mux(self.cls == _J, cur.b, cur.a) + count)]
            with m.If(cls_k):
                m.d.comb += [sp_y.en.eq(1), sp_y.addr.eq(cur.b + count)]
            m.d.sync += [t1_valid.eq(1), t1_first.eq(count == 0), t1_bank.eq(cur.bank),
                         t1_acc.eq(cur.acc), t1_k.eq(cur.k), t1_addr.eq(cur.c + count),
                         t1_ncols.eq(Mux(self.cls == _I, cur.j, cur.i)), count.eq(count + 1)]
            with m.If((count == cur.nx - 1) & cls_k):
                m.d.sync += [phase.eq(1), count.eq(0)]
        with m.If(cur.valid & (phase == 1)):
            m.d.sync += phase.eq(2)
        # weight banks, loaded through port Y
        banks = [[[Signal(signed(p.a_bits) if a_signed else unsigned(p.a_bits),
                          name=f"w{b}_{r}_{c}") for c in range(e)] for r in range(e)]
                 for b in range(2)]
        y_row = elements(sp_y.data, e, p.a_bits, a_signed)
        for b in range(2):
            for r in range(e):
                with m.If(l1_valid & (l1_bank == b) & (l1_row == r)):
                    with m.If(self.cls == _I):
                        m.d.sync += [banks[b][r][c].eq(y_row[c]) for c in range(e)]
                    with m.Else():
                        m.d.sync += [banks[b][c][r].eq(y_row[c]) for c in range(e)]
        # the products, written out per class: only the running class's are evaluated
        x_row = elements(sp_x.data, e, p.a_bits, a_signed)
        x = [Mux(t1_k > r, x_row[r], 0) for r in range(e)]
        sums = [_tree([x[r] * Mux(t1_bank, banks[1][r][c], banks[0][r][c]) for r in range(e)])
                for c in range(e)]
        acc_shape = signed(p.c_bits) if c_signed else unsigned(p.c_bits)
        pes = [[Signal(acc_shape, name=f"pe_{r}_{c}") for c in range(e)] for r in range(e)]
        with m.If(t1_valid & cls_k):
            m.d.sync += [pes[r][c].eq(Mux(t1_first, 0, pes[r][c]) + x_row[r] * y_row[c])
                         for r in range(e) for c in range(e)]
        # the accumulator's read-modify-write: token (read), then write
        r2_valid, r2_acc = Signal(), Signal()
        r2_addr, r2_ncols = Signal(_ADDR), Signal(_EXT)
        r2_data = [Signal(acc_shape, name=f"r2_{c}") for c in range(e)]
        m.d.sync += r2_valid.eq(0)
        with m.If(t1_valid & ~cls_k):
            m.d.comb += [acc_r.en.eq(1), acc_r.addr.eq(t1_addr)]
            m.d.sync += [r2_valid.eq(1), r2_acc.eq(t1_acc), r2_addr.eq(t1_addr),
                         r2_ncols.eq(t1_ncols)]
            m.d.sync += [r2_data[c].eq(sums[c]) for c in range(e)]
        with m.If(cur.valid & (phase == 2)):
            m.d.comb += [acc_r.en.eq(1), acc_r.addr.eq(cur.c + count)]
            m.d.sync += [r2_valid.eq(1), r2_acc.eq(cur.acc), r2_addr.eq(cur.c + count),
                         r2_ncols.eq(cur.j), count.eq(count + 1)]
            for r in range(e):
                with m.If(count == r):
                    m.d.sync += [r2_data[c].eq(pes[r][c]) for c in range(e)]
        old = elements(acc_r.data, e, p.c_bits, c_signed)
        new = [Signal(acc_shape, name=f"acc_new_{c}") for c in range(e)]
        m.d.comb += [new[c].eq(Mux(r2_acc, old[c], 0) + r2_data[c]) for c in range(e)]
        pad = p.acc_elems - e
        m.d.comb += [acc_w.addr.eq(r2_addr),
                     acc_w.data.eq(Cat(*new, *([0] * pad) if pad else [])),
                     acc_w.en.eq(Mux(r2_valid, Cat(*[r2_ncols > c for c in range(e)],
                                                   *[0] * pad), 0))]
