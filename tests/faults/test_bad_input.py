"""Bad input matrix: each mistake gets a clear natsbook error; the connection stays usable."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import natsbook
from natsbook import LocalServer
from natsbook.errors import (
    BadHeaderError,
    BadInputError,
    BadSubjectError,
    MaxPayloadError,
    NatsbookError,
)

from .helpers import wait_for


@pytest.fixture(scope="module")
def small_server() -> Iterator[LocalServer]:
    """A server with ``max_payload: 1KB`` for the whole matrix."""
    with natsbook.local_server(jetstream=False, config="max_payload: 1KB\n") as srv:
        yield srv


@pytest.fixture(scope="module")
def bconn(small_server: LocalServer) -> Iterator[natsbook.Connection]:
    c = natsbook.connect(small_server.url, name="bad-input")
    yield c
    c.close()


def _pub(subject: str, data: Any = b"x", **kw: Any) -> Callable[[natsbook.Connection], Any]:
    return lambda c: c.publish(subject, data, **kw)


def _sub(subject: str, **kw: Any) -> Callable[[natsbook.Connection], Any]:
    return lambda c: c.subscribe(subject, **kw)


class _NoJSON:
    pass


CASES: list[tuple[str, Callable[[natsbook.Connection], Any], type[NatsbookError], str]] = [
    ("pub-space", _pub("a b"), BadSubjectError, "whitespace"),
    ("pub-tab", _pub("a\tb"), BadSubjectError, "whitespace"),
    ("pub-crlf", _pub("a\r\nPUB x 1"), BadSubjectError, "whitespace"),
    ("pub-empty", _pub(""), BadSubjectError, "empty subject"),
    ("pub-empty-token", _pub("a..b"), BadSubjectError, "empty token"),
    ("pub-leading-dot", _pub(".a"), BadSubjectError, "empty token"),
    ("pub-trailing-dot", _pub("a."), BadSubjectError, "empty token"),
    ("pub-star", _pub("a.*"), BadSubjectError, "wildcard"),
    ("pub-gt", _pub("a.>"), BadSubjectError, "wildcard"),
    ("pub-not-str", _pub(123), BadSubjectError, "must be a str"),  # type: ignore[arg-type]
    ("pub-huge-subject", _pub("a" * 5000), BadSubjectError, "characters long"),
    ("pub-huge-reply", _pub("ok", reply="r" * 5000), BadSubjectError, "characters long"),
    ("pub-wild-reply", _pub("ok", reply="r.*"), BadSubjectError, "wildcard"),
    ("sub-space", _sub("a b"), BadSubjectError, "whitespace"),
    ("sub-empty-token", _sub("a..b"), BadSubjectError, "empty token"),
    ("sub-gt-middle", _sub("a.>.b"), BadSubjectError, "'>' may only be the last"),
    ("sub-partial-wild", _sub("a.b*"), BadSubjectError, "wildcard inside token"),
    ("sub-huge", _sub("a." * 3000 + "b"), BadSubjectError, "characters long"),
    ("queue-space", _sub("ok", queue="w orkers"), BadSubjectError, "whitespace"),
    ("queue-wild", _sub("ok", queue="work*"), BadSubjectError, "wildcard"),
    ("queue-empty", _sub("ok", queue=""), BadSubjectError, "non-empty"),
    ("queue-not-str", _sub("ok", queue=7), BadSubjectError, "non-empty str"),
    ("payload-too-big", _pub("ok", b"x" * 2000), MaxPayloadError, "max_payload"),
    ("payload-plus-headers", _pub("ok", b"x" * 1000, headers={"K": "v" * 100}),
     MaxPayloadError, "payload + headers"),
    ("payload-object", _pub("ok", _NoJSON()), BadInputError, "cannot send a _NoJSON"),
    ("payload-nested-object", _pub("ok", {"a": _NoJSON()}), BadInputError, "cannot send"),
    ("payload-set", _pub("ok", {1, 2}), BadInputError, "cannot send a set"),
    ("header-colon", _pub("ok", headers={"a:b": "v"}), BadHeaderError, "':'"),
    ("header-space", _pub("ok", headers={"a b": "v"}), BadHeaderError, "spaces"),
    ("header-empty-key", _pub("ok", headers={"": "v"}), BadHeaderError, "non-empty"),
    ("header-value-crlf", _pub("ok", headers={"K": "v\r\nX: y"}), BadHeaderError, "CR or LF"),
    ("header-value-lf", _pub("ok", headers={"K": "v\nw"}), BadHeaderError, "CR or LF"),
    ("header-list-value-cr", _pub("ok", headers={"K": ["ok", "v\rw"]}), BadHeaderError,
     "CR or LF"),
    ("request-bad-subject", lambda c: c.request("a b", b"", timeout=0.5), BadSubjectError,
     "whitespace"),
    ("max-msgs-zero", _sub("ok", max_msgs=0), BadInputError, "max_msgs"),
    ("callback-not-callable", _sub("ok", callback=42), BadInputError, "callable"),
]


@pytest.mark.parametrize(("action", "error", "words"),
                         [pytest.param(a, e, w, id=i) for i, a, e, w in CASES])
def test_bad_input_is_refused_and_connection_survives(
        bconn: natsbook.Connection, action: Callable[[natsbook.Connection], Any],
        error: type[NatsbookError], words: str) -> None:
    subs_before = len(bconn.subscriptions)
    with pytest.raises(error) as info:
        action(bconn)
    text = str(info.value)
    assert text.startswith("natsbook: ")
    assert words in text, text
    assert len(bconn.subscriptions) == subs_before, "a refused subscribe leaves nothing behind"

    # The connection is still usable: publish + flush + receive.
    subject = f"ok{uuid.uuid4().hex[:10]}"
    sub = bconn.subscribe(subject)
    try:
        bconn.publish(subject, b"still-alive")
        bconn.flush(5)
        wait_for(lambda: len(sub) == 1, timeout=5)
        assert sub.messages()[0].data == b"still-alive"
    finally:
        sub.unsubscribe()
    assert bconn.is_connected
    assert not [e for _, e in bconn.errors if "server" in e], list(bconn.errors)


def test_max_payload_comes_from_the_server(bconn: natsbook.Connection) -> None:
    assert bconn.max_payload == 1024
    with pytest.raises(MaxPayloadError) as info:
        bconn.publish("ok", b"x" * 1025)
    assert (info.value.size, info.value.limit) == (1025, 1024)
    bconn.publish("ok", b"x" * 1024)  # exactly at the limit is fine
    bconn.flush(5)
    assert bconn.is_connected and bconn.gaps().empty
