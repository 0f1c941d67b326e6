from __future__ import annotations

import pytest

from natsbook import check_publish, check_subscribe, matches
from natsbook.errors import BadSubjectError
from natsbook.wire._subjects import check_queue


@pytest.mark.parametrize("subject", ["a", "a.b.c", "_INBOX.x", "foo-bar.baz_1", "$JS.API.INFO"])
def test_valid_publish(subject: str) -> None:
    assert check_publish(subject) == subject


@pytest.mark.parametrize(("subject", "problem"), [
    ("", "empty"), ("a b", "whitespace"), ("a.\tb", "whitespace"), ("a..b", "empty token"),
    (".a", "empty token"), ("a.", "empty token"), ("a.*", "wildcard"), ("a.>", "wildcard"),
    ("x" * 5000, "characters long"),
])
def test_invalid_publish(subject: str, problem: str) -> None:
    with pytest.raises(BadSubjectError, match=problem) as exc:
        check_publish(subject)
    assert exc.value.subject == subject or len(subject) > 4096


@pytest.mark.parametrize("subject", ["a.*", "a.>", "*", ">", "*.b.>", "a.*.c"])
def test_valid_subscribe(subject: str) -> None:
    assert check_subscribe(subject) == subject


@pytest.mark.parametrize(("subject", "problem"), [
    ("a.>.b", "last token"), ("a*", "inside token"), ("a.b>", "inside token"),
    ("a..b", "empty token"), ("a b", "whitespace"), ("", "empty"),
])
def test_invalid_subscribe(subject: str, problem: str) -> None:
    with pytest.raises(BadSubjectError, match=problem):
        check_subscribe(subject)


@pytest.mark.parametrize("queue", ["", "a b", "q*", "q>"])
def test_invalid_queue(queue: str) -> None:
    with pytest.raises(BadSubjectError):
        check_queue(queue)


def test_non_str_subject() -> None:
    with pytest.raises(BadSubjectError, match="must be a str"):
        check_publish(42)  # type: ignore[arg-type]


@pytest.mark.parametrize(("pattern", "subject", "expected"), [
    ("a.b", "a.b", True), ("a.b", "a.c", False), ("a.*", "a.b", True), ("a.*", "a.b.c", False),
    ("a.>", "a.b", True), ("a.>", "a.b.c", True), ("a.>", "a", False), ("*.b", "a.b", True),
    (">", "a", True), ("*", "a.b", False), ("a.*.c", "a.x.c", True), ("a.*.c", "a.x.d", False),
    ("a.b.c", "a.b", False),
])
def test_matches(pattern: str, subject: str, expected: bool) -> None:
    assert matches(pattern, subject) is expected
