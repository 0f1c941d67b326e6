"""Runs of plain MSG frames parsed in bulk, as offsets into the receive buffer.

A flood whose lines differ frame to frame (many subjects, sizes) costs the per-frame parser a
few Python objects per message. Here numpy finds every frame of the rest of a read at once:
CR and space positions, the tokens of each line, its size field, its payload. No per-message
object is made: a capture store builds its Arrow columns straight from the offsets
(``natsbook.capture``), and anything else that wants rows gets the same tuples the parser
makes, on demand.

Each frame is proven with the per-frame parser's own rules before it is taken, and the run ends
at the first frame that is not proven (a control line, an HMSG, another sid, a reply on some
lines only, a payload holding a CR, odd bytes): the parser goes on from there, one frame at a
time. ``tests/test_runs.py`` holds this path to an independent reference decoder.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import repeat
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from ._protocol import RawMsg

__all__ = ["MsgRun", "RunColumns", "find_run"]

#: Fewer frames than this are left to the per-frame parser: the fixed cost is not worth it.
RUN_MIN = 32
#: Bytes looked at first: a run must start with every frame of them proven.
PROBE = 16 * 1024

_CR, _LF, _SP, _TAB = 13, 10, 32, 9
_MSG = (77, 83, 71)  # M S G


class RunColumns:
    """Frames ``i`` of one sid: segment ``k*i + j`` of ``bounds`` is, for j = 0..k-1,
    ``MSG `` / subject / `` sid size`` or `` sid `` / [reply / `` size``] / payload / CRLF+.
    ``buf[bounds[s]:bounds[s + 1]]`` is segment s, so an Arrow binary array over ``buf`` with
    ``bounds`` as its offsets holds every segment without a copy."""

    __slots__ = ("bounds", "buf", "k", "n")

    def __init__(self, buf: bytes, bounds: np.ndarray, k: int, n: int) -> None:
        self.buf = buf
        self.bounds = bounds
        self.k = k
        self.n = n

    @property
    def has_reply(self) -> bool:
        return self.k == 7

    def segment(self, i: int, j: int) -> bytes:
        s = self.k * i + j
        return self.buf[int(self.bounds[s]):int(self.bounds[s + 1])]

    def row(self, i: int) -> RawMsg:
        reply = self.segment(i, 3) if self.k == 7 else None
        return (self.segment(i, 1), reply, None, self.segment(i, self.k - 2))

    def rows(self) -> list[RawMsg]:
        """Every frame as the parser's row tuple (one slice per column, Python ints)."""
        b, buf, k = self.bounds.tolist(), self.buf, self.k

        def cut(j: int) -> list[bytes]:
            return [buf[s:e] for s, e in zip(b[j::k], b[j + 1::k], strict=True)]

        replies = cut(3) if k == 7 else repeat(None, self.n)
        return list(zip(cut(1), replies, repeat(None, self.n), cut(k - 2), strict=True))


class MsgRun:
    """The frames of one sid from one read, in order: bulk columns and plain row lists.

    The parser hands it over in place of the row list it stands for. It keeps the list
    operations the parser and the engine use (``len``, iteration, ``append``, ``extend``);
    ``rows()`` gives the real list, and a capture store takes ``parts`` as they are."""

    __slots__ = ("_n", "parts")

    def __init__(self, first: list[RawMsg] | None = None) -> None:
        self.parts: list[list[RawMsg] | RunColumns] = [first] if first else []
        self._n = len(first) if first else 0

    def add_columns(self, cols: RunColumns) -> None:
        self.parts.append(cols)
        self._n += cols.n

    def append(self, row: RawMsg) -> None:
        last = self.parts[-1] if self.parts else None
        if isinstance(last, list):
            last.append(row)
        else:
            self.parts.append([row])
        self._n += 1

    def extend(self, rows: list[RawMsg]) -> None:
        for row in rows:
            self.append(row)

    def __len__(self) -> int:
        return self._n

    def __iter__(self) -> Iterator[RawMsg]:
        for part in self.parts:
            yield from (part if isinstance(part, list) else part.rows())

    def __getitem__(self, index: int) -> RawMsg:
        if index < 0:
            index += self._n
        for part in self.parts:
            size = len(part) if isinstance(part, list) else part.n
            if 0 <= index < size:
                return part[index] if isinstance(part, list) else part.row(index)
            index -= size
        raise IndexError("MsgRun index out of range")

    def rows(self) -> list[RawMsg]:
        return list(self)


def find_run(buf: bytes, pos: int, limit: int) -> tuple[bytes, RunColumns, int] | None:
    """The longest run of proven plain MSG frames of one sid from ``pos``: (sid, columns, end
    of the run), or None when fewer than RUN_MIN frames are proven. The first PROBE bytes are
    looked at first, so a read this path does not suit costs little."""
    if len(buf) >= 1 << 31:
        return None
    if len(buf) - pos > PROBE:
        probe = _find(buf, pos, pos + PROBE, limit, 4)
        if probe is None:
            return None
        if not probe[3]:  # the run ends inside the probe: that is the run
            return probe[:3] if probe[1].n >= RUN_MIN else None
    found = _find(buf, pos, len(buf), limit, RUN_MIN)
    return None if found is None else found[:3]


def _find(buf: bytes, pos: int, stop: int, limit: int,
          least: int) -> tuple[bytes, RunColumns, int, bool] | None:
    """find_run over buf[pos:stop], taking at least ``least`` frames; the last item says
    whether every complete frame of that span was taken."""
    a = np.frombuffer(buf, np.uint8)
    cr = np.flatnonzero(a[pos:stop] == _CR)
    nfr = len(cr) // 2
    if nfr < least:
        return None
    cr = cr[:2 * nfr] + pos
    lend, pend = cr[0::2], cr[1::2]
    lstart = np.empty(nfr, np.int64)
    lstart[0] = pos
    lstart[1:] = pend[:-1] + 2
    pstart = lend + 2
    plen = pend - pstart
    # Every CR of the line and of the payload's end is a CRLF (the last LF may not be here yet).
    last_lf_ok = pend + 1 < len(a)
    ok = (a[lend + 1] == _LF) & last_lf_ok
    ok &= a[np.where(last_lf_ok, pend + 1, lend + 1)] == _LF
    last = len(a) - 1  # a line shorter than "MSG" may sit at the very end of the read
    ok &= (a[lstart] == _MSG[0]) & (a[np.minimum(lstart + 1, last)] == _MSG[1]) \
        & (a[np.minimum(lstart + 2, last)] == _MSG[2])
    # A line holds no tab and no LF (a lone LF would be read as part of a token otherwise).
    end_span = int(pend[-1]) + 2
    span = a[pos:end_span]
    odd = np.flatnonzero((span == _TAB) | (span == _LF)) + pos
    ok &= np.searchsorted(odd, lend) == np.searchsorted(odd, lstart)
    sp = np.flatnonzero(a[pos:end_span] == _SP) + pos
    s0 = np.searchsorted(sp, lstart)
    spaces = np.searchsorted(sp, lend) - s0
    k = int(spaces[0]) + 1
    if k not in (4, 5):
        return None
    ok &= spaces == k - 1
    s0 = np.where(ok, s0, 0)
    tok = [sp[np.minimum(s0 + j, len(sp) - 1)] for j in range(k - 1)]  # the spaces of a line
    ok &= tok[0] == lstart + 3
    for j in range(1, k - 1):
        ok &= tok[j] > tok[j - 1] + 1  # no empty token
    ok &= lend > tok[-1] + 1
    if not ok[0]:
        return None
    # The size: 1-12 digits, equal to the payload's length, within the limit.
    dstart = tok[-1] + 1
    dlen = lend - dstart
    ok &= dlen <= 12
    size = np.zeros(nfr, np.int64)
    for j in range(int(min(dlen.max(), 12))):
        has = dlen > j
        d = a[np.where(has, dstart + j, 0)].astype(np.int64) - 48
        ok &= ~has | ((d >= 0) & (d <= 9))
        size = np.where(has, size * 10 + d, size)
    ok &= (size == plen) & (plen <= limit)
    # One sid: the first frame's, byte for byte.
    sid0, sid1 = tok[1] + 1, tok[2]
    sid_len = int(sid1[0] - sid0[0])
    ok &= (sid1 - sid0) == sid_len
    for j in range(sid_len):
        ok &= a[np.where(ok, sid0 + j, sid0[0])] == a[sid0[0] + j]
    bad = np.flatnonzero(~ok)
    take = int(bad[0]) if len(bad) else nfr
    if take < least:
        return None
    sid = buf[int(sid0[0]):int(sid1[0])]
    kseg = 5 if k == 4 else 7
    bounds = np.empty(kseg * take + 1, np.int32)
    bounds[0::kseg][:take] = lstart[:take]
    bounds[1::kseg] = tok[0][:take] + 1  # subject
    bounds[2::kseg] = tok[1][:take]  # " sid ..."
    if kseg == 7:
        bounds[3::kseg] = tok[2][:take] + 1  # reply
        bounds[4::kseg] = tok[3][:take]  # " size"
    bounds[kseg - 2::kseg] = pstart[:take]
    bounds[kseg - 1::kseg] = pend[:take]
    end = int(pend[take - 1]) + 2
    bounds[kseg * take] = end
    return sid, RunColumns(buf, bounds, kseg, take), end, take == nfr
