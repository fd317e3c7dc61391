"""The accelerator's DMA: a queue of moves, a request side that walks them in order (one DRAM
beat per cycle), and a response side that writes the scratchpad (or, for ``mvin acc=1``, the
accumulator) as read data returns.

* Queue: :data:`~hw.front.accel_params.DMA_QUEUE` slots, filled in program order by the
  dispatcher, freed in order once done; each slot's memory range is visible to the
  dispatcher's hazard checks until the move is done.
* Request side: ``mvin`` rows become read requests (a transposed ``mvin`` reads, per block of
  up to E memory rows, one DRAM line per memory-row element, then idles while the block has
  fewer lines than rows, so the transposer keeps up); ``mvout`` reads accumulator rows and
  sends them as write beats (transposed: a block of rows into a transposer, then its columns
  as lines); ``mvin acc=1`` reads each row of ``cols`` C elements in its beats (the row's
  bytes, ``W`` a beat), transposed one request per element (DRAM line by line, each line's
  elements in order; C elements of 8 bits or more). Every read request pushes a descriptor
  (where its data goes) into a FIFO.
* Response side: each response pops a descriptor; its elements pass through ``max(x, 0)``
  for an ``mvin relu=1`` (signed operand types); a plain row is written to the scratchpad at
  once; a transposed line fills one column of a double-buffered transposer, whose rows are
  written (through a second write port) after the block's last line. Scratchpad moves into
  overlapping rows are never in flight together (the dispatcher holds the later one), so the
  two ports never race. ``mvin col=C`` shifts each row (or transposer column) to element C
  and writes only elements ``C .. C+cols-1``.
* Accumulator rows (``mvin acc=1``): a row's beats gather in a row buffer and the row is
  written (the accelerator's DMA write port of the accumulator, element enables) with its
  last beat; a transposed move writes one element per response. Responses come in order and
  through one port, so accumulator writes of later moves never overtake earlier ones, and an
  earlier ``mvout`` has read its rows (at its request side) before they are written.

The cycle counts are :func:`hw.front.accel_timing.move_cycles`'.

Layer: hw.rtl, the Amaranth layer.
"""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal
from amaranth.lib import data
from amaranth.lib.fifo import SyncFIFO

from ..front.accel_params import AccelParams
from .accel_exec import elements

__all__ = ["DmaUnit"]


def _relu(word, bits: int, on):
    """``word``'s signed ``bits``-bit elements, each ``max(x, 0)`` when ``on``."""
    return Cat(*[Mux(on & word[n + bits - 1], 0, word[n:n + bits])
                 for n in range(0, len(word), bits)])


class _Entry:
    def __init__(self, n: int, col_bits: int) -> None:
        self.mvout = Signal(name=f"q{n}_mvout")
        self.dram = Signal(32, name=f"q{n}_dram")
        self.stride = Signal(24, name=f"q{n}_stride")
        self.row = Signal(20, name=f"q{n}_row")
        self.rows = Signal(12, name=f"q{n}_rows")
        self.cols = Signal(12, name=f"q{n}_cols")
        self.transpose = Signal(name=f"q{n}_transpose")
        self.relu = Signal(name=f"q{n}_relu")
        self.col = Signal(col_bits, name=f"q{n}_col")    #: mvin: first element written
        self.acc = Signal(name=f"q{n}_acc")              #: mvin: into the accumulator
        self.done = Signal(name=f"q{n}_done")

    def fields(self) -> list[Signal]:
        return [self.mvout, self.dram, self.stride, self.row, self.rows, self.cols,
                self.transpose, self.relu, self.col, self.acc]


def _shift_elems(word, amount, bits: int, count: int):
    """``word``'s low ``count`` ``bits``-bit elements moved up by ``amount`` elements (zeros
    shifted in, elements past ``count`` dropped): a log-depth barrel shifter."""
    width = count * bits
    v = word[:width] if len(word) >= width else Cat(word, Const(0, width - len(word)))
    for s in range(len(amount)):
        step = bits << s
        moved = Const(0, width) if step >= width else Cat(Const(0, step), v[:width - step])
        v = Mux(amount[s], moved, v)
    return v


def _window(lo, n, count: int):
    """Per element ``x < count`` whether ``lo <= x < lo + n``: a write's element enables
    (no comparison that ``lo``'s range makes constant: Verilator's lint refuses them)."""
    top = (1 << len(lo)) - 1
    return Cat(*[(lo <= x if x < top else Const(1)) & (lo + n > x) for x in range(count)])


class DmaUnit:
    """Signals the dispatcher drives (``push`` and ``inp``, an :class:`_Entry` of the move)
    and reads (``entries`` with ``in_flight``, ``full``, ``empty``)."""

    def __init__(self, p: AccelParams) -> None:
        self.p = p
        q = p.dma_queue
        self.push = Signal()
        #: bits of an element index in a scratchpad or accumulator row (``col``)
        self.col_bits = max(p.sp_elems - 1, p.acc_elems - 1, 1).bit_length()
        self.inp = _Entry(-1, self.col_bits)
        self.entries = [_Entry(n, self.col_bits) for n in range(q)]
        self.in_flight = [Signal(name=f"q{n}_in_flight") for n in range(q)]
        self.full = Signal()
        self.empty = Signal()
        self._bits = (q - 1).bit_length()
        #: beats of a whole accumulator row (the row buffer of ``mvin acc=1``)
        self.row_beats = p.acc_elems * p.c_bits // (8 * p.bus_bytes)
        self.desc = data.StructLayout({
            "row": 20, "cols": 12, "transposed": 1, "line": max(p.sp_elems - 1, 1).bit_length(),
            "last_line": 1, "rb": p.edge.bit_length(), "entry_last": 1, "entry": self._bits,
            "buf": 1, "relu": 1, "col": self.col_bits,
            "acc": 1, "beat": max(self.row_beats - 1, 1).bit_length(), "row_last": 1})

    def elaborate_into(self, m: Module, port, sp_w, sp_t, acc_r, acc_w) -> None:
        """``port``: the accelerator (its mem_* members); ``sp_w``, ``sp_t``: scratchpad
        write ports (plain rows, transposer rows); ``acc_r``: the accumulator's read port
        for moves out; ``acc_w``: its write port for ``mvin acc=1`` (granularity C)."""
        p, q = self.p, self.p.dma_queue
        head, tail, rq = (Signal(self._bits, name=n) for n in ("head", "tail", "rq"))
        count = Signal(range(q + 1))
        m.d.comb += [self.full.eq(count == q), self.empty.eq(count == 0)]
        for n, e in enumerate(self.entries):
            m.d.comb += self.in_flight[n].eq((((n - head) % (1 << self._bits)) < count)
                                             & ~e.done)
        pop = Signal()
        heads = Signal(q)
        m.d.comb += heads.eq(Cat(*[e.done for e in self.entries]))
        m.d.comb += pop.eq((count != 0) & heads.bit_select(head, 1))
        m.d.sync += count.eq(count + self.push - pop)
        with m.If(pop):
            m.d.sync += head.eq(head + 1)
        with m.If(self.push):
            m.d.sync += tail.eq(tail + 1)
            for n, e in enumerate(self.entries):
                with m.If(tail == n):
                    m.d.sync += [d.eq(s) for d, s in zip(e.fields(), self.inp.fields(),
                                                         strict=True)]
                    m.d.sync += e.done.eq(0)
        fifo = SyncFIFO(width=self.desc.size, depth=p.resp_fifo_depth)
        m.submodules.resp_fifo = fifo
        self._requests(m, port, acc_r, fifo, rq)
        self._responses(m, port, sp_w, sp_t, acc_w, fifo)

    def _mark_done(self, m: Module, index) -> None:
        for n, e in enumerate(self.entries):
            with m.If(index == n):
                m.d.sync += e.done.eq(1)

    def _requests(self, m: Module, port, acc_r, fifo, rq) -> None:
        p, e_ = self.p, self.p.edge
        cur = _Entry(-2, self.col_bits)
        for f, *srcs in zip(cur.fields(), *[e.fields() for e in self.entries], strict=True):
            m.d.comb += f.eq(Array(srcs)[rq])
        unwalked = Signal(range(p.dma_queue + 1))     # moves queued, not yet started
        active = unwalked != 0
        phase = Signal(3)           # 0 lines/reads, 1 idle, 2 beats, 3 wait, 4 line beats
        r, c, beat, idle = Signal(12), Signal(12), Signal(12), Signal(12)
        r0 = Signal(12)
        off = Signal(32)
        tbuf = Signal()
        rb = Signal(12)
        m.d.comb += rb.eq(Mux(cur.rows - r0 > e_, e_, cur.rows - r0))
        last_block = r0 + e_ >= cur.rows
        desc = data.View(self.desc, fifo.w_data)
        finish = Signal()
        m.d.comb += [desc.entry.eq(rq), desc.cols.eq(cur.cols), desc.buf.eq(tbuf),
                     desc.relu.eq(cur.relu), desc.col.eq(cur.col)]
        to_sp = active & ~cur.mvout & ~cur.acc

        def advance_block():
            m.d.sync += [r0.eq(r0 + e_), c.eq(0), off.eq(0), tbuf.eq(~tbuf), phase.eq(0),
                         r.eq(0)]
            with m.If(last_block):
                m.d.comb += finish.eq(1)

        with m.If(to_sp & ~cur.transpose):                          # mvin, plain rows
            m.d.comb += [port.mem_req_valid.eq(fifo.w_rdy), port.mem_req_addr.eq(cur.dram + off),
                         port.mem_req_len.eq((cur.cols * p.a_bits + 7) >> 3),
                         desc.row.eq(cur.row + r), desc.entry_last.eq(r == cur.rows - 1)]
            with m.If(fifo.w_rdy):
                m.d.comb += fifo.w_en.eq(1)
                m.d.sync += [r.eq(r + 1), off.eq(off + cur.stride)]
                with m.If(r == cur.rows - 1):
                    m.d.comb += finish.eq(1)
        # one transposer drain at a time: a block's last line comes no earlier than the
        # previous block's drain has ended (``gap``: cycles until that holds for 1 line)
        gap = Signal(range(e_ + 1))
        with m.If(gap != 0):
            m.d.sync += gap.eq(gap - 1)
        go = fifo.w_rdy & ((c != 0) | (gap < cur.cols))
        with m.If(to_sp & cur.transpose):                           # mvin through the transposer
            with m.If(phase == 0):
                m.d.comb += [port.mem_req_valid.eq(go),
                             port.mem_req_addr.eq(cur.dram + ((r0 * p.a_bits) >> 3) + off),
                             port.mem_req_len.eq((rb * p.a_bits + 7) >> 3),
                             desc.row.eq(cur.row + r0), desc.transposed.eq(1),
                             desc.line.eq(cur.col + c), desc.rb.eq(rb),
                             desc.last_line.eq(c == cur.cols - 1),
                             desc.entry_last.eq(last_block & (c == cur.cols - 1))]
                with m.If(go):
                    m.d.comb += fifo.w_en.eq(1)
                    m.d.sync += [c.eq(c + 1), off.eq(off + cur.stride)]
                    with m.If(c == cur.cols - 1):
                        m.d.sync += gap.eq(rb - 1)
                        wait = Mux(rb > cur.cols, rb - cur.cols, 0)
                        with m.If(wait != 0):
                            m.d.sync += [phase.eq(1), idle.eq(wait)]
                        with m.Else():
                            advance_block()
            with m.If(phase == 1):
                m.d.sync += idle.eq(idle - 1)
                with m.If(idle == 1):
                    advance_block()
        self._moves_out(m, port, acc_r, cur, active, phase, r, c, beat, r0, off, rb,
                        last_block, finish, advance_block)
        self._moves_to_acc(m, port, fifo, desc, cur, active & ~cur.mvout & cur.acc, r, c,
                           beat, off, finish)
        m.d.sync += unwalked.eq(unwalked + self.push - finish)
        with m.If(finish):
            m.d.sync += [rq.eq(rq + 1), r.eq(0), c.eq(0), beat.eq(0), r0.eq(0), off.eq(0),
                         phase.eq(0)]
            with m.If(cur.mvout):
                self._mark_done(m, rq)

    def _moves_to_acc(self, m, port, fifo, desc, cur, active, r, c, beat, off, finish
                      ) -> None:
        """``mvin acc=1`` requests (``active``: the current move is one). Plain: per row its
        beats, ``W`` bytes each but the row's last (its bytes left); transposed: per DRAM
        line ``c`` (at ``dram + c * stride``) one request per element ``r``, each a one-element
        row (``row + r``, element ``col + c``) for the response side."""
        p, w = self.p, self.p.bus_bytes
        row_bytes = Signal(16)
        m.d.comb += row_bytes.eq((cur.cols * p.c_bits + 7) >> 3)
        left = row_bytes - beat * w
        row_last = beat * w + w >= row_bytes
        last_row = r == cur.rows - 1
        m.d.comb += desc.acc.eq(active)
        with m.If(active & ~cur.transpose):
            m.d.comb += [port.mem_req_valid.eq(fifo.w_rdy),
                         port.mem_req_addr.eq(cur.dram + off + beat * w),
                         port.mem_req_len.eq(Mux(left > w, w, left)),
                         desc.row.eq(cur.row + r), desc.beat.eq(beat),
                         desc.row_last.eq(row_last), desc.entry_last.eq(row_last & last_row)]
            with m.If(fifo.w_rdy):
                m.d.comb += fifo.w_en.eq(1)
                m.d.sync += beat.eq(beat + 1)
                with m.If(row_last):
                    m.d.sync += [beat.eq(0), r.eq(r + 1), off.eq(off + cur.stride)]
                    with m.If(last_row):
                        m.d.comb += finish.eq(1)
        with m.If(active & cur.transpose):
            last_line = c == cur.cols - 1
            m.d.comb += [port.mem_req_valid.eq(fifo.w_rdy),
                         port.mem_req_addr.eq(cur.dram + off + ((r * p.c_bits) >> 3)),
                         port.mem_req_len.eq((p.c_bits + 7) >> 3),
                         desc.row.eq(cur.row + r), desc.col.eq(cur.col + c), desc.cols.eq(1),
                         desc.row_last.eq(1), desc.entry_last.eq(last_row & last_line)]
            with m.If(fifo.w_rdy):
                m.d.comb += fifo.w_en.eq(1)
                m.d.sync += r.eq(r + 1)
                with m.If(last_row):
                    m.d.sync += [r.eq(0), c.eq(c + 1), off.eq(off + cur.stride)]
                    with m.If(last_line):
                        m.d.comb += finish.eq(1)

    def _moves_out(self, m, port, acc_r, cur, active, phase, r, c, beat, r0, off, rb,
                   last_block, finish, advance_block) -> None:
        p, e_, w = self.p, self.p.edge, self.p.bus_bytes
        cbytes = p.c_bits // 8
        m.d.comb += acc_r.en.eq(0)          # a read port's en is 1 unless driven: hold data
        with m.If(active & cur.mvout & ~cur.transpose):             # mvout, plain rows
            row_bytes = cur.cols * cbytes
            beats = (row_bytes + w - 1) // w
            with m.If(phase == 0):
                m.d.comb += [acc_r.en.eq(1), acc_r.addr.eq(cur.row)]
                m.d.sync += phase.eq(2)
            with m.If(phase == 2):
                m.d.comb += [port.mem_req_valid.eq(1), port.mem_req_write.eq(1),
                             port.mem_req_addr.eq(cur.dram + off + beat * w),
                             port.mem_req_len.eq(Mux(row_bytes - beat * w > w, w,
                                                     row_bytes - beat * w)),
                             port.mem_req_wdata.eq(acc_r.data.word_select(beat, 8 * w))]
                m.d.sync += beat.eq(beat + 1)
                with m.If(beat == beats - 1):
                    m.d.comb += [acc_r.en.eq(1), acc_r.addr.eq(cur.row + r + 1)]
                    m.d.sync += [beat.eq(0), r.eq(r + 1), off.eq(off + cur.stride)]
                    with m.If(r == cur.rows - 1):
                        m.d.comb += finish.eq(1)
        # mvout through the transposer: rows in (element x of row t to column x), then the
        # columns out as lines
        columns = [Signal(e_ * p.c_bits, name=f"otb_col{x}") for x in range(p.acc_elems)]
        o_valid, o_row = Signal(), Signal(range(e_))
        m.d.sync += o_valid.eq(0)
        with m.If(o_valid):
            row = elements(acc_r.data, p.acc_elems, p.c_bits, False)
            m.d.sync += [columns[x].word_select(o_row, p.c_bits).eq(row[x])
                         for x in range(p.acc_elems)]
        with m.If(active & cur.mvout & cur.transpose):
            line_bytes = rb * cbytes
            beats = (line_bytes + w - 1) // w
            with m.If(phase == 0):
                m.d.comb += [acc_r.en.eq(1), acc_r.addr.eq(cur.row + r0 + r)]
                m.d.sync += [o_valid.eq(1), o_row.eq(r), r.eq(r + 1)]
                with m.If(r == rb - 1):
                    m.d.sync += phase.eq(3)
            with m.If(phase == 3):
                m.d.sync += phase.eq(4)
            with m.If(phase == 4):
                line = Array(columns)[c]
                m.d.comb += [port.mem_req_valid.eq(1), port.mem_req_write.eq(1),
                             port.mem_req_addr.eq(cur.dram + r0 * cbytes + off + beat * w),
                             port.mem_req_len.eq(Mux(line_bytes - beat * w > w, w,
                                                     line_bytes - beat * w)),
                             port.mem_req_wdata.eq(line.word_select(beat, 8 * w))]
                m.d.sync += beat.eq(beat + 1)
                with m.If(beat == beats - 1):
                    m.d.sync += [beat.eq(0), c.eq(c + 1), off.eq(off + cur.stride)]
                    with m.If(c == cur.cols - 1):
                        advance_block()

    def _responses(self, m: Module, port, sp_w, sp_t, acc_w, fifo) -> None:
        p, e_ = self.p, self.p.edge
        resp_valid, raw = Signal(), Signal(len(port.mem_resp_data))
        m.d.sync += [resp_valid.eq(port.mem_resp_valid), raw.eq(port.mem_resp_data)]
        desc = data.View(self.desc, fifo.r_data)
        tb = [[Signal(p.sp_elems * p.a_bits, name=f"tb{b}_{r}") for r in range(e_)]
              for b in range(2)]
        d_active, d_buf, d_last = Signal(), Signal(), Signal()
        d_row, d_cols, d_cnt, d_rb = Signal(20), Signal(12), Signal(12), Signal(12)
        d_col = Signal(len(desc.col))
        d_entry = Signal(self._bits)
        resp_data = _relu(raw, p.a_bits, desc.relu) if p.arch.types[0].signed else raw
        resp = elements(resp_data, min(e_, p.bus_bytes * 8 // p.a_bits), p.a_bits, False)
        with m.If(d_active):
            m.d.comb += [sp_t.addr.eq(d_row + d_cnt), sp_t.en.eq(_window(d_col, d_cols,
                                                                         p.sp_elems))]
            m.d.comb += sp_t.data.eq(Array([Array(tb[0]), Array(tb[1])])[d_buf][d_cnt])
            m.d.sync += d_cnt.eq(d_cnt + 1)
            with m.If(d_cnt == d_rb - 1):
                m.d.sync += d_active.eq(0)
                with m.If(d_last):
                    self._mark_done(m, d_entry)
        with m.If(resp_valid):
            m.d.comb += fifo.r_en.eq(1)
            with m.If(desc.acc):
                self._acc_row(m, acc_w, desc, raw)
            with m.Elif(~desc.transposed):
                m.d.comb += [sp_w.addr.eq(desc.row),
                             sp_w.data.eq(_shift_elems(resp_data, desc.col, p.a_bits,
                                                       p.sp_elems)),
                             sp_w.en.eq(_window(desc.col, desc.cols, p.sp_elems))]
                with m.If(desc.entry_last):
                    self._mark_done(m, desc.entry)
            with m.Else():
                for b in range(2):
                    with m.If(desc.buf == b):
                        m.d.sync += [tb[b][t].word_select(desc.line, p.a_bits).eq(resp[t])
                                     for t in range(len(resp))]
                with m.If(desc.last_line):
                    m.d.sync += [d_active.eq(1), d_buf.eq(desc.buf), d_row.eq(desc.row),
                                 d_cols.eq(desc.cols), d_col.eq(desc.col),
                                 d_cnt.eq(0), d_rb.eq(desc.rb),
                                 d_last.eq(desc.entry_last), d_entry.eq(desc.entry)]

    def _acc_row(self, m: Module, acc_w, desc, raw) -> None:
        """An ``mvin acc=1`` response (in the response cycle): the beat into the row buffer;
        with the row's last beat the row (buffer and this beat), moved up to element
        ``desc.col``, is written to accumulator row ``desc.row``, elements ``col ..
        col+cols-1`` enabled."""
        p, beats = self.p, self.row_beats
        buf = [Signal(len(raw), name=f"acc_row_beat{b}") for b in range(beats)]
        for b in range(beats):
            with m.If(desc.beat == b):
                m.d.sync += buf[b].eq(raw)
        row = Cat(*[Mux(desc.beat == b, raw, buf[b]) for b in range(beats)])
        with m.If(desc.row_last):
            m.d.comb += [acc_w.addr.eq(desc.row),
                         acc_w.data.eq(_shift_elems(row, desc.col, p.c_bits, p.acc_elems)),
                         acc_w.en.eq(_window(desc.col, desc.cols, p.acc_elems))]
            with m.If(desc.entry_last):
                self._mark_done(m, desc.entry)
