"""Entry points: connect(), read_capture() and sql() over a capture on disk."""

from __future__ import annotations

import os
import ssl
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..capture import dataset_sql, is_dataset, path_sql, read_dataset
from ..capture._frames import DecodeArg, filter_table, to_frame
from ..capture._store import DEFAULT_BUDGET, read_spill_dir
from ..core import (
    DEFAULT_PENDING_SIZE,
    DEFAULT_RECONNECT_BUFFER,
    Credentials,
    Engine,
    TLSOptions,
    parse_url,
    split_urls,
)
from ..errors import BadInputError
from ._connection import Connection

__all__ = ["connect", "read_capture", "sql"]

DEFAULT_URL = "nats://127.0.0.1:4222"


def connect(servers: str | Sequence[str] | None = None, *, token: str | None = None,
            user: str | None = None, password: str | None = None,
            creds: str | os.PathLike[str] | None = None,
            nkey_seed: str | bytes | os.PathLike[str] | None = None,
            tls_ca: str | None = None, tls_cert: str | None = None, tls_key: str | None = None,
            tls_handshake_first: bool = False, tls_hostname: str | None = None,
            tls_context: ssl.SSLContext | None = None, name: str | None = "natsbook",
            connect_timeout: float = 5.0, ping_interval: float = 5.0,
            max_outstanding_pings: int = 2, reconnect: bool = True,
            max_reconnect_attempts: int = -1, reconnect_wait: float = 0.05,
            reconnect_wait_max: float = 0.5,
            reconnect_buffer_size: int = DEFAULT_RECONNECT_BUFFER,
            pending_size: int = DEFAULT_PENDING_SIZE, echo: bool = True,
            discovery: bool = True,
            error_callback: Callable[[str], Any] | None = None,
            capture_budget: int | None = DEFAULT_BUDGET) -> Connection:
    """Connect to NATS and start the background I/O thread.

    Args:
        servers: one URL or several (``nats://``, ``tls://``, or ``ws://`` / ``wss://`` for
            the server's WebSocket listener, with an optional path for a proxy; credentials
            may be in the URL: ``nats://user:pass@host:4222``, ``nats://token@host``).
            None: ``$NATS_URL``
            (comma-separated), else ``nats://127.0.0.1:4222``. Servers announced by the
            cluster (INFO connect_urls) join the pool unless ``discovery=False``.
        token / user / password: simple auth.
        creds: path to a JWT ``.creds`` file (signs the server nonce).
        nkey_seed: an NKey user seed (``SU...``) or a path to a file holding it.
        tls_ca / tls_cert / tls_key: PEM files; any of them (or a tls:// or wss:// URL)
            means TLS is required on every server of the pool, those the cluster announces
            included: a plaintext server is an error for that attempt (no credentials are
            sent) and the client moves on, never a silent downgrade. So is a plaintext server
            after one that required TLS.
        tls_handshake_first: do the TLS handshake before the server's INFO.
        connect_timeout: seconds for each connect attempt (socket, TLS, CONNECT/PONG).
        ping_interval / max_outstanding_pings: keepalive; a server that does not answer
            this many PINGs in a row is treated as gone (detects a frozen server).
        reconnect / max_reconnect_attempts (-1: forever) / reconnect_wait (first backoff,
            doubling with jitter) / reconnect_wait_max: reconnect policy.
        reconnect_buffer_size: bytes of publishes kept while disconnected (8 MiB); past it
            publish() raises NotConnectedError.
        pending_size: bytes queued for the socket before publish() waits (backpressure);
            control frames count too. Besides, at most 64 KiB of the I/O thread's own PONG /
            PING frames are queued at a time: past that the server is not reading, and the
            connection is dropped as slow (reconnecting, like any other loss).
        error_callback: called with a text for each asynchronous error (also kept in
            ``conn.errors`` and logged to the ``natsbook`` logger).
        capture_budget: bytes all captures of this connection may hold together (1 GiB;
            None: no joint bound). Past it the oldest rows of any capture are evicted and
            counted; each capture also has its own ``max_bytes`` (256 MiB by default).

    Returns:
        A connected Connection.

    Raises:
        ConnectError: nothing answered (fails fast, no retry loop on the first connect).
        AuthError: credentials refused.
        TLSError: TLS mismatch or an untrusted certificate.
        WebSocketUpgradeError: a ws:// / wss:// URL whose HTTP upgrade was refused
            (NotWebSocketError: nothing speaks WebSocket there).
    """
    if servers is None:
        env = os.environ.get("NATS_URL", "").strip()
        urls = split_urls(env) if env else [DEFAULT_URL]
    elif isinstance(servers, str):
        urls = split_urls(servers)
    else:
        urls = list(servers)
    if not urls:
        raise BadInputError("no server URL given - e.g. natsbook.connect('nats://127.0.0.1:4222')")
    pool = [parse_url(u) for u in urls]
    seed: bytes | None = None
    jwt: str | None = None
    if creds is not None and nkey_seed is not None:
        raise BadInputError("give either creds= (JWT .creds file) or nkey_seed=, not both")
    if creds is not None:
        jwt, seed = Credentials.load_creds(creds)
    elif nkey_seed is not None:
        seed = Credentials.load_seed(nkey_seed)
    if token is not None and user is not None:
        raise BadInputError("give either token= or user=/password=, not both")
    if connect_timeout <= 0:
        raise BadInputError("connect_timeout must be > 0 seconds")
    credentials = Credentials(user=user, password=password, token=token, nkey_seed=seed, jwt=jwt)
    tls = TLSOptions(ca=tls_ca, cert=tls_cert, key=tls_key, handshake_first=tls_handshake_first,
                     hostname=tls_hostname, context=tls_context)
    # One tls:// or wss:// URL, or any TLS option: TLS on every server of the pool, those the
    # cluster announces included (as nats.go).
    tls.required = tls.wanted or any(s.scheme in ("tls", "wss") for s in pool)
    if tls_key and not tls_cert:
        raise BadInputError("tls_key= needs tls_cert= (the client certificate) too")
    engine = Engine(
        pool, credentials, tls, name=name, connect_timeout=connect_timeout,
        ping_interval=ping_interval, max_outstanding_pings=max_outstanding_pings,
        reconnect=reconnect, max_reconnect_attempts=max_reconnect_attempts,
        reconnect_wait=reconnect_wait, reconnect_wait_max=reconnect_wait_max,
        reconnect_buffer_size=reconnect_buffer_size, pending_size=pending_size, echo=echo,
        discovery=discovery, error_callback=error_callback, capture_budget=capture_budget,
    )
    engine.start()
    return Connection(engine)


def read_capture(path: str | os.PathLike[str], decode: DecodeArg | None = None, *,
                 last: int | None = None, since: Any = None, until: Any = None,
                 subject: str | None = None) -> pd.DataFrame:
    """Read a capture written by ``Subscription.to_parquet``, a spill directory, or a dataset
    written by ``natsbook record`` (a folder or an ``s3://`` URL).

    Gives the same DataFrame as ``Subscription.to_pandas`` with the same arguments. A spill
    directory holding several captures (runs, or subscriptions sharing it) gives their rows
    merged by receive time, as ``Connection.to_pandas`` does, so ``last=`` is the newest.

    A recorded dataset gives its messages in stream order, each ``stream_seq`` once, with a
    ``stream_seq`` column after ``time`` (the time the stream stored the message); ``since``
    / ``until`` (``until`` excluded) skip the ``date=/hour=`` folders outside them unread,
    and ``decode`` defaults to the one the dataset declares (``natsbook record --decode``).
    ``decode=None`` elsewhere means ``"auto"``.
    """
    if is_dataset(path):
        return read_dataset(path, decode, since=since, until=until, subject=subject, last=last)
    p = Path(path)
    if not p.exists():
        raise BadInputError(f"no capture at {os.fspath(path)!r} - give a .parquet file, a "
                            "spill directory or a dataset written by `natsbook record`")
    table = read_spill_dir(p) if p.is_dir() else pq.read_table(p)
    table = filter_table(table, subject=subject, since=since, last=last)
    if until is not None:
        ts = pd.Timestamp(until)
        ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts
        table = table.filter(pc.less(table["time"], pa.scalar(ts.value, table["time"].type)))
    return to_frame(table, decode or "auto")


def sql(query: str, path: str | os.PathLike[str], *, since: Any = None,
        until: Any = None) -> pd.DataFrame:
    """SQL over a capture on disk, no connection needed.

    Args:
        query: DuckDB SQL; the table ``messages`` holds the capture's rows (columns ``time,
            sub, subject, reply, headers, size, data, payload``; ``sub`` is NULL here; a
            recorded dataset adds ``stream_seq``, each sequence once).
        path: a spill directory (``subscribe(..., spill=DIR)``), a file written by
            ``Subscription.to_parquet``, or a dataset written by ``natsbook record`` (a
            folder or an ``s3://`` URL). Parts are read lazily, so captures larger than
            memory can be aggregated; a ``WHERE time ...`` skips row groups by their
            statistics.
        since / until: for a recorded dataset, only the hours in [since, until) are opened
            at all (and ``messages`` holds only those rows).

    Returns:
        The query's result as a DataFrame.

    Raises:
        QueryError: DuckDB refused or failed the query (its message is in ``.detail``).
        BadInputError: no capture at `path`.
    """
    if is_dataset(path):
        return dataset_sql(query, path, since=since, until=until)
    return path_sql(query, path)
