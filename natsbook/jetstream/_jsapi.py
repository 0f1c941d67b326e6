"""JetStream JSON API plumbing: requests to ``$JS.API.*``, their errors, and "did you mean"
not-found errors. Shared by the stream functions (:mod:`._streams`), KV (:mod:`._kv`) and the
readers in :mod:`._jsread`."""

from __future__ import annotations

import datetime as dt
import difflib
import math
import numbers
import re
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import orjson
import pandas as pd

from ..errors import BadInputError, JetStreamError, NoRespondersError, NotFoundError

if TYPE_CHECKING:
    from ..core import Link

__all__ = ["API", "api_request", "check_bucket", "paged", "stream_names"]

API = "$JS.API."
_NO_JS = ("JetStream is not enabled on this server (or for this account) - start nats-server "
          "with -js, e.g. natsbook.local_server(jetstream=True)")


def api_request(conn: Link, subject: str, payload: Any = None, *,
                timeout: float = 5.0) -> dict[str, Any]:
    """Call ``$JS.API.<subject>`` and return the decoded JSON answer.

    Raises:
        JetStreamError: JetStream is not enabled, or the API answered with an error.
    """
    try:
        msg = conn.request(API + subject, b"" if payload is None else payload, timeout=timeout)
    except NoRespondersError:
        raise JetStreamError(_NO_JS, code=503) from None
    body = orjson.loads(msg.data) if msg.data else {}
    err = body.get("error")
    if err:
        raise JetStreamError(f"JetStream {subject.split('.')[0].lower()} request failed: "
                             f"{err.get('description', err)}", code=int(err.get("code", 0)),
                             err_code=int(err.get("err_code", 0)))
    return body


def stream_names(conn: Link, *, timeout: float = 5.0) -> list[str]:
    """Names of every stream in the account, sorted."""
    return sorted(paged(lambda offset: api_request(conn, "STREAM.NAMES", {"offset": offset},
                                                   timeout=timeout), "streams"))


def paged(fetch: Callable[[int], dict[str, Any]], key: str) -> list[Any]:
    """Every item of a paged JetStream list: ``fetch(offset)`` returns one page, whose `key`
    holds its items and ``total`` the size of the whole list."""
    items: list[Any] = []
    while True:
        page = fetch(len(items))
        got = page.get(key) or []
        items.extend(got)
        if not got or len(items) >= page.get("total", 0):
            return items


def _suggest(name: str, candidates: list[str]) -> str | None:
    lower = {c.lower(): c for c in candidates}
    if name.lower() in lower:
        return lower[name.lower()]
    close = difflib.get_close_matches(name, candidates, n=1, cutoff=0.5)
    return close[0] if close else None


def not_found_error(kind: str, name: str, candidates: list[str], create: str | None,
                    empty: str | None = None) -> NotFoundError:
    """``<kind> <name> not found`` with the closest candidate as a suggestion and `create`
    (how to make it, when it can be made) as the way out; with no candidates at all, `empty`
    (what to say then) or `create`."""
    suggestion = _suggest(name, candidates)
    err = NotFoundError(kind, name, suggestion)
    way = (empty or create) if not candidates else create
    if way and suggestion:
        err.args = (f"{err.args[0]} Or {way}.",)
    elif way:
        err.args = (f"{err.args[0]} - {way}",)
    return err


def stream_not_found(conn: Link, name: str) -> NotFoundError:
    try:
        names = stream_names(conn)
    except JetStreamError:
        names = []
    how = "natsbook.jetstream.add_stream(conn, name, subjects)"
    return not_found_error("stream", name, names, f"create it with {how}",
                           f"there are no streams yet; create one with {how}")


def stream_call(conn: Link, subject: str, name: str, payload: Any = None,
                 timeout: float = 5.0) -> dict[str, Any]:
    """``api_request`` on ``<subject>.<name>``; a missing stream raises NotFoundError."""
    check_name(name)
    try:
        return api_request(conn, f"{subject}.{name}", payload, timeout=timeout)
    except JetStreamError as exc:
        if exc.err_code == 10059 or (exc.code == 404 and "stream not found" in exc.description):
            raise stream_not_found(conn, name) from None
        raise


_BUCKET_RE = re.compile(r"^[a-zA-Z0-9_-]+$")


def check_bucket(bucket: str) -> None:
    """A KV or object-store bucket name: letters, digits, '-' and '_'."""
    if not isinstance(bucket, str) or not _BUCKET_RE.match(bucket):
        raise BadInputError(f"bad bucket name {bucket!r}: use letters, digits, '-' and '_'")


def check_name(name: str) -> None:
    if not isinstance(name, str) or not name or any(c in name for c in " .*>\t\r\n"):
        raise BadInputError(f"bad stream name {name!r}: names cannot be empty or contain "
                            "spaces, '.', '*' or '>'")


def ttl_header(ttl: Any) -> str:
    """The ``Nats-TTL`` value for `ttl`: seconds (a number, at least 1), a timedelta, a
    duration string (``"90s"``, ``"1h30m"``, ``"1d"``; bare digits ``"90"`` are seconds, as
    nats-server reads them), or ``"never"`` in any case (kept forever, whatever the
    stream's max_age).

    Raises:
        BadInputError: a TTL under one second (the server's resolution), or not a duration.
    """
    if isinstance(ttl, str):
        text = ttl.strip()
        if text.lower() == "never":  # as nats-server reads it
            return "never"
        try:
            if text.isascii() and text.isdigit():  # whole seconds, as nats-server reads them
                seconds = float(int(text))  # (pandas would read "90" as 90 nanoseconds)
            else:
                with warnings.catch_warnings():  # pandas' deprecated unit spellings ("1d")
                    warnings.simplefilter("ignore")
                    seconds = pd.Timedelta(text).total_seconds()
        except (ValueError, OverflowError):
            raise BadInputError(f"ttl={ttl!r} is not a duration: give seconds (60), a "
                                "timedelta, '90s', '1h30m' or 'never'") from None
    elif isinstance(ttl, dt.timedelta | pd.Timedelta):
        seconds = pd.Timedelta(ttl).total_seconds()
    elif isinstance(ttl, numbers.Real) and not isinstance(ttl, bool):
        seconds = float(ttl)
    else:
        raise BadInputError(f"ttl={ttl!r}: give seconds (60), a timedelta, '90s' or 'never'")
    if not math.isfinite(seconds) or seconds < 1:
        raise BadInputError(f"ttl={ttl!r} is under one second - per-message TTLs have a "
                            "resolution of one second (the smallest is 1)")
    whole = int(seconds)
    return f"{whole}s" if whole == seconds else f"{round(seconds * 1000)}ms"


def server_at_least(version: Any, want: tuple[int, int]) -> bool:
    """Whether a server ``version`` string ("2.12.1", "v2.15.0-beta") is `want` or later;
    False when it cannot be read."""
    match = re.match(r"v?(\d+)\.(\d+)", str(version or ""))
    if match is None:
        return False
    return (int(match.group(1)), int(match.group(2))) >= want
