"""request_batch and request_many against a real server: order, per-row errors, the
concurrency bound, Ctrl-C, scatter-gather stop conditions."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pandas as pd
import pytest

import natsbook
from natsbook import LocalServer
from natsbook.errors import BadInputError, NoRespondersError, ServiceError
from natsbook.notebook._magics_messaging import latency_summary


@contextmanager
def answering(server: LocalServer, subject: str, data: bytes,
              headers: dict[str, str]) -> Iterator[None]:
    """A responder on its own connection that answers every request on `subject` with
    `data` and `headers`."""
    responder = natsbook.connect(server.url)
    try:
        responder.subscribe(subject, callback=lambda m: responder.publish(
            m.reply, data, headers=headers))
        responder.flush()
        yield
    finally:
        responder.close()


class HoldingResponder:
    """Holds requests until none has come for `quiet` seconds, records how many it held (the
    requests in flight at that moment), then answers them in reverse order. Payloads starting
    with b"drop" are never answered."""

    def __init__(self, url: str, subject: str, quiet: float = 0.05) -> None:
        self.conn = natsbook.connect(url)
        self.held: list[natsbook.Msg] = []
        self.rounds: list[int] = []
        self.received = 0
        self.quiet = quiet
        self._lock = threading.Lock()
        self._last = time.monotonic()
        self._stop = threading.Event()
        self.conn.subscribe(subject, callback=self._take, capture=False)
        self._thread = threading.Thread(target=self._answer, daemon=True)
        self._thread.start()

    def _take(self, msg: natsbook.Msg) -> None:
        with self._lock:
            self.held.append(msg)
            self.received += 1
            self._last = time.monotonic()

    def _answer(self) -> None:
        while not self._stop.wait(self.quiet / 4):
            with self._lock:
                if not self.held or time.monotonic() - self._last < self.quiet:
                    continue
                held, self.held = self.held, []
            self.rounds.append(len(held))
            for msg in reversed(held):
                if not msg.data.startswith(b"drop") and msg.reply:
                    self.conn.publish(msg.reply, msg.data)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.conn.close()


@pytest.fixture
def holding(server: LocalServer, subject: str) -> Iterator[HoldingResponder]:
    r = HoldingResponder(server.url, subject)
    yield r
    r.close()


def test_request_batch_keeps_input_order_and_bounds_concurrency(
        conn: natsbook.Connection, subject: str, holding: HoldingResponder) -> None:
    payloads = [f"p{i}".encode() for i in range(95)]
    df = conn.request_batch(subject, payloads, concurrency=20, timeout=10.0, decode="bytes")
    assert len(df) == 95
    assert [bytes(x) for x in df["data"]] == payloads  # answered in reverse, shown in order
    assert df["error"].isna().all()
    assert (df["latency_ms"] > 0).all()
    # The responder never held more than 20 at once, and did hold exactly 20: the bound.
    assert max(holding.rounds) == 20
    assert sum(holding.rounds) == 95
    assert not conn._engine._resp_map


def test_request_batch_errors_per_row(conn: natsbook.Connection, server: LocalServer,
                                      subject: str) -> None:
    def handler(msg: natsbook.Msg) -> bytes:
        if msg.data == b"bad":
            raise ValueError("no good")
        return msg.data.upper()

    responder = natsbook.connect(server.url)
    try:
        responder.serve(subject, handler)
        df = conn.request_batch(subject, [b"a", b"bad", b"c"], timeout=2.0, decode="text")
        assert list(df["error"]) == [None, "ServiceError", None]
        assert list(df["data"]) == ["A", "no good", "C"]
        assert df["headers"][1]["Nats-Service-Error"] == ["ValueError: no good"]
        # The service's text and code stay in the row, as request() raises them.
        assert list(df["error_text"]) == [None, "ValueError: no good", None]
        assert df["error_code"].tolist() == [pd.NA, 500, pd.NA]
        with pytest.raises(ServiceError) as raised:
            conn.request(subject, b"bad", timeout=2.0)
        assert (raised.value.code, raised.value.description) == (500, df["error_text"][1])
        none = conn.request_batch(subject + ".nobody", [b"x", b"y"], timeout=2.0)
        assert list(none["error"]) == ["NoRespondersError"] * 2
        assert none["error_code"].tolist() == [503, 503]
        assert list(none["error_text"]) == ["no responders"] * 2
    finally:
        responder.close()


def test_request_batch_keeps_a_coded_service_error(conn: natsbook.Connection,
                                                   server: LocalServer, subject: str) -> None:
    """A responder's Nats-Service-Error text and Nats-Service-Error-Code reach the row (and
    the %nats_req --count summary), not only the class name."""
    with answering(server, subject, b"", {"Nats-Service-Error": "boom: disk on fire",
                                          "Nats-Service-Error-Code": "418"}):
        df = conn.request_batch(subject, [b"a", b"b"], timeout=2.0)
        assert list(df["error"]) == ["ServiceError"] * 2
        assert df["error_code"].tolist() == [418, 418]
        assert list(df["error_text"]) == ["boom: disk on fire"] * 2
        summary = latency_summary(df, subject, 100, 0.1)
        assert "ServiceError 418: 'boom: disk on fire' x2" in summary


def test_request_batch_timeout_rows(conn: natsbook.Connection, subject: str,
                                    holding: HoldingResponder) -> None:
    start = time.monotonic()
    df = conn.request_batch(subject, [b"a", b"drop1", b"b", b"drop2"], timeout=0.5,
                            decode="text")
    elapsed = time.monotonic() - start
    assert list(df["error"]) == [None, "RequestTimeout", None, "RequestTimeout"]
    assert list(df["error_text"][[1, 3]]) == ["no reply within 0.5s"] * 2
    assert list(df["data"][[0, 2]]) == ["a", "b"]
    assert df["latency_ms"][[1, 3]].isna().all() and df["time"][[1, 3]].isna().all()
    assert 0.5 <= elapsed < 3.0
    assert not conn._engine._resp_map


def test_request_batch_bad_input_sends_nothing(conn: natsbook.Connection, subject: str) -> None:
    for kwargs in ({"concurrency": 0}, {"concurrency": 1.5}, {"timeout": 0}):
        with pytest.raises(BadInputError):
            conn.request_batch(subject, [b"x"], **kwargs)  # type: ignore[arg-type]
    assert conn.stats["out_msgs"] == 0
    assert len(conn.request_batch(subject, [])) == 0


def test_request_batch_ctrl_c_leaves_nothing_in_flight(
        conn: natsbook.Connection, subject: str, server: LocalServer) -> None:
    # A responder that never answers: the batch stalls with 10 in flight.
    silent = natsbook.connect(server.url)
    seen = silent.subscribe(subject)
    main = threading.main_thread().ident
    assert main is not None and threading.current_thread() is threading.main_thread()

    def fire() -> None:
        deadline = time.monotonic() + 10
        while seen.stats.received < 10 and time.monotonic() < deadline:
            time.sleep(0.005)
        signal.pthread_kill(main, signal.SIGINT)

    t = threading.Thread(target=fire, daemon=True)
    t.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            conn.request_batch(subject, [b"x"] * 1000, concurrency=10, timeout=30.0)
        t.join(5)
        assert not conn._engine._resp_map, "requests still registered after Ctrl-C"
        conn.flush()
        silent.flush()
        time.sleep(0.2)
        assert seen.stats.received == 10, "requests went out after Ctrl-C"
        assert conn.stats["out_msgs"] == 10
    finally:
        silent.close()


def _servers(url: str, subject: str, delays: list[float]) -> list[natsbook.Connection]:
    conns = []
    for i, delay in enumerate(delays):
        c = natsbook.connect(url)

        def handler(msg: natsbook.Msg, i: int = i, delay: float = delay) -> bytes:
            time.sleep(delay)
            return f"r{i}".encode()

        c.serve(subject, handler)
        conns.append(c)
    return conns


def test_request_many_max_replies(conn: natsbook.Connection, server: LocalServer,
                                  subject: str) -> None:
    responders = _servers(server.url, subject, [0, 0, 0])
    try:
        start = time.monotonic()
        df = conn.request_many(subject, b"q", max_replies=2, max_wait=5.0, decode="text")
        assert len(df) == 2 and time.monotonic() - start < 4.0
        assert set(df["data"]) <= {"r0", "r1", "r2"}
        assert (df["latency_ms"] >= 0).all()
    finally:
        for c in responders:
            c.close()


def test_request_many_max_wait(conn: natsbook.Connection, server: LocalServer,
                               subject: str) -> None:
    responders = _servers(server.url, subject, [0, 0, 0.1])
    try:
        start = time.monotonic()
        df = conn.request_many(subject, max_wait=0.6, decode="text")
        elapsed = time.monotonic() - start
        assert sorted(df["data"]) == ["r0", "r1", "r2"]
        assert 0.6 <= elapsed < 2.0
        assert not [s for s in conn._engine._subs.values() if s.internal], "reply inbox left"
    finally:
        for c in responders:
            c.close()


def test_request_many_stall(conn: natsbook.Connection, server: LocalServer,
                            subject: str) -> None:
    responders = _servers(server.url, subject, [0, 1.0])
    try:
        start = time.monotonic()
        df = conn.request_many(subject, max_wait=5.0, stall=0.2, decode="text")
        elapsed = time.monotonic() - start
        assert list(df["data"]) == ["r0"]
        assert 0.2 <= elapsed < 0.9
        # A listener that never answers: stall only counts after the first reply, so
        # max_wait ends it.
        conn.subscribe(subject + ".quiet")
        start = time.monotonic()
        quiet = conn.request_many(subject + ".quiet", max_wait=0.3, stall=0.05)
        assert len(quiet) == 0 and time.monotonic() - start >= 0.3
    finally:
        for c in responders:
            c.close()


def test_request_many_no_responders(conn: natsbook.Connection, subject: str) -> None:
    start = time.monotonic()
    with pytest.raises(NoRespondersError):
        conn.request_many(subject, max_wait=3.0)
    assert time.monotonic() - start < 2.0
    with pytest.raises(BadInputError):
        conn.request_many(subject, max_replies=0)


def test_service_error_header_names_are_case_sensitive_in_both_paths(
        conn: natsbook.Connection, server: LocalServer, subject: str) -> None:
    """request() and request_batch() read Nats-Service-Error alike (case-sensitively, as
    nats.go): a lower-case name is an ordinary header of a good reply in both."""
    with answering(server, subject, b"fine", {"nats-service-error": "lower",
                                              "nats-service-error-code": "419"}):
        assert conn.request(subject, b"x", timeout=2).data == b"fine"
        df = conn.request_batch(subject, [b"a"], timeout=2.0)
        assert list(df["error"]) == [None] and df["error_code"].isna().all()
