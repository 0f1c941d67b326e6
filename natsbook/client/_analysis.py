"""Live analysis as methods: ``sql()`` and ``live()`` on Connection and Subscription, and the
connection-less ``natsbook.sql(query, path)``.

Thin delegations: the SQL lives in :mod:`natsbook.capture._sql` (DuckDB, imported on first use), the
refresher in :mod:`natsbook.capture._live`, and the view (a widget from the notebook layer,
which the client layer never imports: ``natsbook`` registers it in the method table of
:mod:`._methods`, imported on first use) in :mod:`natsbook.notebook.widgets.live`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pandas as pd

from ._methods import _impl

if TYPE_CHECKING:
    from ._connection import Connection
    from ._subscription import Subscription

__all__ = ["AnalysisMethods", "SubAnalysisMethods", "sql"]

LiveFn = Callable[[pd.DataFrame], Any] | str


def sql(query: str, path: str | os.PathLike[str]) -> pd.DataFrame:
    """SQL over a capture on disk, no connection needed.

    Args:
        query: DuckDB SQL; the table ``messages`` holds the capture's rows (columns ``time,
            sub, subject, reply, headers, size, data, payload``; ``sub`` is NULL here).
        path: a spill directory (``subscribe(..., spill=DIR)``) or a file written by
            ``Subscription.to_parquet``. Parts are read lazily, so captures larger than memory
            can be aggregated.

    Returns:
        The query's result as a DataFrame.

    Raises:
        QueryError: DuckDB refused or failed the query (its message is in ``.detail``).
        BadInputError: no capture at `path`.
    """
    from ..capture._sql import path_sql

    return path_sql(query, path)


class AnalysisMethods:
    """Mixed into Connection."""

    def sql(self, query: str) -> pd.DataFrame:
        """Run DuckDB SQL over every capture of this connection.

        The table ``messages`` holds every row of every capture you made (active, finished and
        spilled to Parquet; the connection's internal subscriptions are left out), with the
        columns ``time, sub, subject, reply, headers, size, data, payload``: ``data`` is the
        payload as text (``data::JSON ->> 'temp'``; ``TRY_CAST(data AS JSON)`` is NULL for a
        payload that is not JSON), ``payload`` its raw bytes. A capture made with
        ``subscribe(..., name="readings")`` is also the table ``readings``. The in-memory
        batches are scanned in place, without a copy.

        Returns:
            The query's result as a DataFrame.

        Raises:
            QueryError: DuckDB refused or failed the query (its message is in ``.detail``).
        """
        from ..capture._sql import connection_sql

        return connection_sql(self._as_connection(), query)

    def live(self, fn: LiveFn, *, every: float = 1.0, decode: str = "auto",
             title: str | None = None) -> Any:
        """A view of ``fn(frame)`` over every capture (``frame`` as ``conn.to_pandas()``, with
        a ``sub`` column), or of a SQL query's result, re-rendered at most every `every`
        seconds and only when new rows arrived. See :meth:`Subscription.live`."""
        return _impl("live_view")(self._as_connection(), fn, every=every, decode=decode,
                                  title=title)

    def _as_connection(self) -> Connection:
        return self  # type: ignore[return-value]


class SubAnalysisMethods:
    """Mixed into Subscription."""

    def sql(self, query: str) -> pd.DataFrame:
        """Run DuckDB SQL over this capture alone (the table ``messages``; its name too, if it
        has one). Columns as in :meth:`Connection.sql`.

        Raises:
            QueryError: DuckDB refused or failed the query (its message is in ``.detail``).
            BadInputError: the subscription was made with ``capture=False``.
        """
        from ..capture._sql import subscription_sql

        return subscription_sql(self._as_subscription(), query)

    def live(self, fn: LiveFn, *, every: float = 1.0, decode: str = "auto",
             title: str | None = None) -> Any:
        """A widget showing ``fn(frame)``, refreshed as messages arrive.

        Args:
            fn: a function of the capture's DataFrame (``sub.to_pandas(decode)``) returning a
                DataFrame (shown as a table), a matplotlib figure (shown as an image) or
                anything with a rich repr; or a SQL string, run with :meth:`sql`.
            every: re-render at most every this many seconds (>= 0.1), and only when new rows
                arrived. Rendering runs on the view's own thread, never the kernel's or the
                I/O thread; an exception in `fn` is shown in place and the view keeps going.
            decode: payload decoding of the frame handed to `fn`.
            title: an optional heading.

        Returns:
            The view (a ``natsbook.widgets.LiveView``, an ipywidgets VBox). Its Stop button,
            ``view.stop()`` or ``view.close()`` stop it; it stops by itself once the capture
            has ended.
        """
        return _impl("live_view")(self._as_subscription(), fn, every=every, decode=decode,
                                  title=title)

    def _as_subscription(self) -> Subscription:
        return self  # type: ignore[return-value]
