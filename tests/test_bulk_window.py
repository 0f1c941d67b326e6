"""The parser's windowed bulk pass (``_bulk_msgs`` in natsbook/wire/_protocol.py): what runs
(tests/test_runs.py) leave to it - sids changing frame to frame, replies on some lines only -
parses as frame by frame and as the strict reference decoder reads it, and called directly it
takes exactly the frames it proves."""

from __future__ import annotations

import pytest

import natsbook.wire._protocol as proto
import natsbook.wire._runs as runs
from natsbook.wire._protocol import RawMsg
from tests.support.reference_codec import decode
from tests.support.run_streams import (
    LIMIT,
    ODD_FRAMES,
    msg,
    outcome,
    reference,
    switched_off,
    without_runs,
)


def _mixed(n: int, sids: tuple[bytes, ...], reply: bytes | None) -> bytes:
    """Differing lines whose sid changes frame to frame: no run, the windowed pass's case."""
    return b"".join(msg(b"mix.%d" % i, sids[i % len(sids)], reply if i % 3 else None,
                        b"m" * (i % 23)) for i in range(n))


def _per_frame(chunks: list[bytes]) -> object:
    """The parser with no bulk pass at all: frame after frame."""
    with switched_off(proto, "BULK_MIN"):
        return without_runs(chunks)


@pytest.mark.parametrize("sids", [(b"1",), (b"1", b"2"), (b"12", b"3", b"456")],
                         ids=["one", "two", "three"])
@pytest.mark.parametrize("odd", [b"", *ODD_FRAMES],
                         ids=["none", *(f"odd{i}" for i in range(len(ODD_FRAMES)))])
def test_the_windowed_pass_agrees_with_the_per_frame_parser(odd: bytes,
                                                            sids: tuple[bytes, ...]) -> None:
    """What runs leave to the windowed bulk pass (sids changing frame to frame, replies on
    some lines only) parses as frame by frame, around each awkward frame; a valid stream as
    the strict reference decoder reads it."""
    stream = _mixed(150, sids, b"_INBOX.r") + odd + _mixed(150, sids, None)
    assert without_runs([stream]) == _per_frame([stream])
    if not odd:
        assert without_runs([stream]) == reference(stream)
        assert outcome([stream]) == reference(stream)


def test_the_windowed_pass_across_its_windows() -> None:
    """A read longer than the windowed pass's 64 KiB window, cut anywhere: the same rows."""
    stream = _mixed(6000, (b"1", b"2"), b"r")
    assert len(stream) > 2 * proto.BULK_WINDOW
    want = reference(stream)
    for cut in (0, 1, 100, proto.BULK_WINDOW - 3, proto.BULK_WINDOW + 7, len(stream) - 5):
        chunks = [stream[:cut], stream[cut:]]
        assert without_runs(chunks) == want == _per_frame(chunks)


_STOPPERS = {
    "size": b"MSG a 1 x\r\nx\r\n", "hmsg": b"HMSG a 1 0 1\r\nx\r\n", "ping": b"PING\r\n",
    "tab": b"MSG a\t1 1\r\nx\r\n", "tab-token": b"MSG a\tb 1 1\r\nx\r\n",
    "cr-token": b"MSG a\rb 1 1\r\nx\r\n", "lf-token": b"MSG a\nb 1 1\r\nx\r\n",
    "two-cr-token": b"MSG a\rb\rc 1 1\r\nx\r\n",
    "short": b"MSG a 1 3\r\nx\r\n", "lower": b"msg a 1 1\r\nx\r\n",
    "double-space": b"MSG a  1 1\r\nx\r\n", "13-digits": b"MSG a 1 0000000000001\r\nx\r\n",
    "over-limit": b"MSG a 1 31\r\n" + b"p" * 31 + b"\r\n",
}


@pytest.mark.parametrize("lf_payload", [0, 1, 2], ids=["clean", "one-lf", "two-lf"])
@pytest.mark.parametrize("pad", [0, 2])
@pytest.mark.parametrize("stop_at", [None, 0, 77])
@pytest.mark.parametrize("odd", list(_STOPPERS.values()), ids=list(_STOPPERS))
def test_the_windowed_pass_takes_exactly_the_frames_it_proves(stop_at: int | None, odd: bytes,
                                                              pad: int, lf_payload: int) -> None:
    """_bulk_msgs with runs off, called directly: (frames taken, the position after the last,
    whether the window ended) and the rows it filed, exactly. Taking fewer would still parse
    right (the per-frame parser takes the rest), so only this pins the pass itself. `pad`
    moves where the 64 KiB window ends (inside a line or a payload); LFs in a payload make
    the pass check each line for tabs, CRs and LFs (as many as the lone CRs of a stopper,
    so that counting CRs and LFs alone would not tell); the size limit is 30 (12-digit sizes
    and a size of exactly the limit are taken)."""
    frames = [msg(b"w.%d" % i, b"%d" % (1 + i % 3), b"r.%d" % i if i % 2 else None,
                  b"p" * (i % 31)) for i in range(3000)]
    frames[0] = msg(b"w.0", b"1", None, b"q" * (11 * pad))
    frames[2] = b"MSG w.2 3 000000000007\r\nsevenpp\r\n"
    if lf_payload:
        frames[5] = msg(b"w.5", b"3", None, b".\n" * lf_payload)
    if stop_at is not None:
        frames[stop_at] = odd
    stream = b"".join(frames)
    out: dict[bytes, list[RawMsg]] = {}
    with switched_off(runs, "RUN_MIN"):
        taken, end, whole = proto._bulk_msgs(stream, 0, 30, out)
    if stop_at is None:  # the window ends inside a frame: every whole frame before it
        expect = 0
        while sum(map(len, frames[:expect + 1])) <= proto.BULK_WINDOW:
            expect += 1
    else:
        expect = stop_at
    assert (taken, end, whole) == (expect, sum(map(len, frames[:expect])), stop_at is None)
    want = decode(b"".join(frames[:expect]), LIMIT)[0]
    got = sorted((sid, *row) for sid, rows in out.items() for row in rows)
    assert got == sorted(want)
