"""Subject and queue errors, word for word: the message names the problem and the fix (house
style), and `.subject` / `.problem` carry it as data. Pinned exactly (mutation testing found
every message and hint unpinned)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from natsbook.errors import BadSubjectError
from natsbook.wire._subjects import MAX_SUBJECT_LEN, check_publish, check_queue, check_subscribe

LONG = "a" * (MAX_SUBJECT_LEN + 1)

CASES: list[tuple[Callable[[object], object], object, str, str]] = [
    (check_publish, 42, "42",
     "bad subject '42': publish subject must be a str, got int - "
     "pass a string such as 'sensors.temp'"),
    (check_subscribe, b"a.b", "b'a.b'",
     "bad subject \"b'a.b'\": subscribe subject must be a str, got bytes - "
     "pass a string such as 'sensors.temp'"),
    (check_subscribe, ["a"], "['a']",  # unhashable: must not reach the lru_cache
     "bad subject \"['a']\": subscribe subject must be a str, got list - "
     "pass a string such as 'sensors.temp'"),
    (check_publish, "", "",
     "bad subject '': empty subject - give a subject such as 'sensors.temp'"),
    (check_publish, LONG, "a" * 40 + "...",
     f"bad subject '{'a' * 40}...': subject is {MAX_SUBJECT_LEN + 1} characters long - "
     f"keep subjects under {MAX_SUBJECT_LEN} characters"),
    (check_subscribe, "a b", "a b",
     "bad subject 'a b': contains whitespace - "
     "use '.' or '_' between words, e.g. 'sensors.room_1'"),
    (check_publish, "a..b", "a..b",
     "bad subject 'a..b': has an empty token (leading, trailing or doubled '.') - "
     "remove the extra '.'"),
    (check_publish, "a.*", "a.*",
     "bad subject 'a.*': wildcard '*' is not allowed when publishing - "
     "publish to a concrete subject; wildcards are for subscribe"),
    (check_publish, "a.>", "a.>",
     "bad subject 'a.>': wildcard '>' is not allowed when publishing - "
     "publish to a concrete subject; wildcards are for subscribe"),
    (check_subscribe, "a.>.b", "a.>.b",
     "bad subject 'a.>.b': '>' may only be the last token - e.g. 'sensors.>' matches the rest"),
    (check_subscribe, "a.b*", "a.b*",
     "bad subject 'a.b*': wildcard inside token 'b*' - "
     "wildcards must be whole tokens: 'a.*.c' or 'a.>'"),
    (check_queue, "", "",
     "bad subject '': queue group name must be a non-empty str - e.g. queue='workers'"),
    (check_queue, 7, "7",
     "bad subject '7': queue group name must be a non-empty str - e.g. queue='workers'"),
    (check_queue, "my workers", "my workers",
     "bad subject 'my workers': queue group name contains whitespace - "
     "use a single word such as 'workers'"),
    (check_queue, "work*", "work*",
     "bad subject 'work*': queue group name contains a wildcard - "
     "use a plain name such as 'workers'"),
    (check_queue, "w>", "w>",
     "bad subject 'w>': queue group name contains a wildcard - "
     "use a plain name such as 'workers'"),
]


@pytest.mark.parametrize(("check", "value", "subject", "message"), CASES)
def test_exact_error(check: Callable[[object], object], value: object, subject: str,
                     message: str) -> None:
    with pytest.raises(BadSubjectError) as exc:
        check(value)
    assert str(exc.value) == f"natsbook: {message}"
    assert exc.value.subject == subject
    assert exc.value.problem == message.split(": ", 1)[1].rsplit(" - ", 1)[0]


def test_length_boundary_is_exact() -> None:
    at_limit = "a" * MAX_SUBJECT_LEN
    assert check_publish(at_limit) == at_limit
    assert check_subscribe(at_limit) == at_limit


@pytest.mark.parametrize("ok", ["workers", "q-1", "a.b", "_x"])
def test_good_queue_names_pass(ok: str) -> None:
    assert check_queue(ok) == ok
