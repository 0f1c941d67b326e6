"""Subject validation and wildcard matching (pure, no I/O)."""

from __future__ import annotations

import re
from functools import lru_cache

from ..errors import BadSubjectError

__all__ = ["check_publish", "check_queue", "check_subscribe", "matches"]

_WHITESPACE = frozenset(" \t\r\n\f\v")
# Subjects longer than this are refused client-side; the server would reject the line anyway.
MAX_SUBJECT_LEN = 4096
# The common case, proven valid in one C-level match: tokens of plain characters (no
# whitespace, no wildcard characters at all). Anything else takes the full check.
_PLAIN = re.compile(r"[A-Za-z0-9_\-$:]+(?:\.[A-Za-z0-9_\-$:]+)*")


def _common(subject: object, kind: str) -> list[str]:
    if not isinstance(subject, str):
        raise BadSubjectError(
            repr(subject), f"{kind} subject must be a str, got {type(subject).__name__}",
            "pass a string such as 'sensors.temp'",
        )
    if not subject:
        raise BadSubjectError(subject, "empty subject", "give a subject such as 'sensors.temp'")
    if len(subject) > MAX_SUBJECT_LEN:
        raise BadSubjectError(
            subject[:40] + "...", f"subject is {len(subject)} characters long",
            f"keep subjects under {MAX_SUBJECT_LEN} characters",
        )
    if any(c in _WHITESPACE for c in subject):
        raise BadSubjectError(
            subject, "contains whitespace", "use '.' or '_' between words, e.g. 'sensors.room_1'"
        )
    tokens = subject.split(".")
    if "" in tokens:
        raise BadSubjectError(
            subject, "has an empty token (leading, trailing or doubled '.')",
            "remove the extra '.'",
        )
    return tokens


def check_publish(subject: str) -> str:
    """Validate a subject for publishing: no wildcards, no empty tokens, no whitespace.

    Raises:
        BadSubjectError: naming the problem and the fix.
    """
    if type(subject) is str and len(subject) <= MAX_SUBJECT_LEN and _PLAIN.fullmatch(subject):
        return subject
    return _check_publish_full(subject)


def _check_publish_full(subject: str) -> str:
    """check_publish without the fast path (the tests hold the two to the same answers)."""
    tokens = _common(subject, "publish")
    for tok in tokens:
        if tok == "*" or tok == ">":
            raise BadSubjectError(
                subject, f"wildcard {tok!r} is not allowed when publishing",
                "publish to a concrete subject; wildcards are for subscribe",
            )
    return subject


@lru_cache(maxsize=4096)
def _check_sub_cached(subject: str) -> str:
    tokens = _common(subject, "subscribe")
    for i, tok in enumerate(tokens):
        if tok == ">" and i != len(tokens) - 1:
            raise BadSubjectError(
                subject, "'>' may only be the last token", "e.g. 'sensors.>' matches the rest"
            )
        if len(tok) > 1 and ("*" in tok or ">" in tok):
            raise BadSubjectError(
                subject, f"wildcard inside token {tok!r}",
                "wildcards must be whole tokens: 'a.*.c' or 'a.>'",
            )
    return subject


def check_subscribe(subject: str) -> str:
    """Validate a subscription subject: `*` as whole tokens, `>` only last.

    Raises:
        BadSubjectError: naming the problem and the fix.
    """
    if not isinstance(subject, str):
        _common(subject, "subscribe")
    return _check_sub_cached(subject)


def check_queue(queue: str) -> str:
    """Validate a queue group name (one token-ish word, no whitespace, no wildcards)."""
    if not isinstance(queue, str) or not queue:
        raise BadSubjectError(str(queue), "queue group name must be a non-empty str",
                              "e.g. queue='workers'")
    if any(c in _WHITESPACE for c in queue):
        raise BadSubjectError(queue, "queue group name contains whitespace",
                              "use a single word such as 'workers'")
    if "*" in queue or ">" in queue:
        raise BadSubjectError(queue, "queue group name contains a wildcard",
                              "use a plain name such as 'workers'")
    return queue


@lru_cache(maxsize=1024)
def _split(pattern: str) -> tuple[str, ...]:
    return tuple(pattern.split("."))


def matches(pattern: str, subject: str) -> bool:
    """Does `subject` match the subscription `pattern` (`*` one token, `>` the rest)?"""
    pt = _split(pattern)
    st = subject.split(".")
    for i, p in enumerate(pt):
        if p == ">":
            return len(st) > i
        if i >= len(st):
            return False
        if p != "*" and p != st[i]:
            return False
    return len(st) == len(pt)
