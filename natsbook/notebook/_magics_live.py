"""Live-analysis verbs: ``%%nats_sql`` (DuckDB over the captures) and ``%%nats_live`` (a view
re-rendered as traffic arrives)."""

from __future__ import annotations

import ast
import re
from typing import TYPE_CHECKING, Any

import pandas as pd
from IPython.core.error import UsageError
from IPython.core.magic import cell_magic, line_cell_magic, magics_class, no_var_expand
from IPython.core.magic_arguments import argument, magic_arguments

from ._magic_support import check_name, magic_errors, parse_line
from ._magics_base import NatsMagicsBase

if TYPE_CHECKING:
    from natsbook import Connection, Subscription
    from natsbook.notebook.widgets.live import LiveView

_SQL_START = re.compile(r"^\s*(?:--[^\n]*\n\s*)*(select|with|from|summarize|pivot|unpivot|"
                        r"values|describe|show|table)\b", re.IGNORECASE)
_PERIOD = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m)?\s*$")


def _period(text: str) -> float:
    m = _PERIOD.match(text)
    if m is None:
        raise UsageError(f"--every {text!r} is not a period - e.g. 1s, 500ms, 2.5 or 1m")
    value = float(m.group(1)) * {"ms": 0.001, "s": 1.0, "m": 60.0}[m.group(2) or "s"]
    if value < 0.1:
        raise UsageError(f"--every {text} is below 100ms - at most ten renders a second")
    return value


def _function(body: str, user_ns: dict[str, Any]) -> Any:
    """The cell body as ``def fn(df): ...`` whose last expression is returned."""
    try:
        tree = ast.parse(body, "<%%nats_live>")
    except SyntaxError as exc:
        raise UsageError(f"the cell body is neither SQL nor valid Python: {exc.msg} (line "
                         f"{exc.lineno})") from None
    stmts = tree.body
    if stmts and isinstance(stmts[-1], ast.Expr):
        stmts[-1] = ast.copy_location(ast.Return(value=stmts[-1].value), stmts[-1])
    wrapper = ast.parse("def _nats_live_fn(df):\n    pass\n")
    func = wrapper.body[0]
    assert isinstance(func, ast.FunctionDef)
    func.body = stmts or func.body
    ast.fix_missing_locations(wrapper)
    local: dict[str, Any] = {}
    # The user's namespace is the function's globals: imports and helpers of the notebook work.
    exec(compile(wrapper, "<%%nats_live>", "exec"), user_ns, local)
    return local["_nats_live_fn"]


@magics_class
class LiveMagics(NatsMagicsBase):
    """SQL over captures and live views."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._views: list[LiveView] = []

    @magic_arguments()
    @argument("-o", "--out", dest="name", help="bind the result DataFrame to this variable")
    @no_var_expand
    @cell_magic
    def nats_sql(self, line: str, cell: str) -> pd.DataFrame:
        """DuckDB SQL over the connection's captures: the cell is the query.

        ``messages`` holds every capture (columns time, sub, subject, reply, headers, size,
        data, payload); captures named with ``subscribe(..., name=...)`` are tables too.
        """
        args = parse_line(self.nats_sql, line)
        check_name(args.name)
        if not cell.strip():
            raise UsageError("%%nats_sql: the cell is the query - e.g. SELECT subject, "
                             "count(*) FROM messages GROUP BY subject")
        conn = self._require()
        with magic_errors():
            frame = conn.sql(cell)
        self._bind(args.name, frame)
        self._limit_display(len(frame))
        return frame

    @magic_arguments()
    @argument("target", help="what to watch: a Subscription variable, a capture name "
                             "(subscribe(..., name=...)), `messages` for every capture, or a "
                             "subject pattern to start capturing now")
    @argument("--every", "-e", default="1s", help="refresh at most this often, and only when "
                                                  "new rows arrived (1s, 500ms; >= 100ms)")
    @argument("--sql", action="store_true", help="the cell is SQL (detected by itself when it "
                                                 "starts with SELECT, WITH, FROM, ...)")
    @argument("--decode", "-d", default=None, metavar="DECODE",
              help="payload decoding of the DataFrame `df`: auto, json, text, bytes, msgpack, "
                   "cbor or a registered name (default: %%config NatsMagics.decode)")
    @argument("--title", "-t", help="a heading for the view")
    @argument("-o", "--out", dest="name", help="bind the view to this variable")
    @no_var_expand
    @line_cell_magic
    def nats_live(self, line: str, cell: str | None = None) -> LiveView:
        """A view re-rendered as messages arrive. The cell is SQL, or Python with the
        capture's DataFrame as ``df`` whose last expression is shown (a DataFrame, a
        matplotlib figure, anything with a rich repr)."""
        args = parse_line(self.nats_live, line)
        check_name(args.name)
        if cell is None or not cell.strip():
            raise UsageError("%%nats_live needs a cell body: SQL, or Python over `df` whose last "
                             "expression is shown")
        every = _period(args.every)
        fn: Any = cell if args.sql or _SQL_START.match(cell) else \
            _function(cell, self._shell.user_ns)
        conn = self._require()
        with magic_errors():
            source = self._target(conn, args.target)
            view = source.live(fn, every=every, decode=args.decode or self.decode.lower(),
                               title=args.title)
        self._views = [v for v in self._views if v.running]
        self._views.append(view)
        self._bind(args.name, view)
        return view

    def _target(self, conn: Connection, target: str) -> Connection | Subscription:
        from natsbook import Subscription

        value = self._shell.user_ns.get(target)
        if isinstance(value, Subscription):
            return value
        if target == "messages":
            return conn
        for sub in reversed(conn.internals.captures()):
            if sub.name == target:
                return sub
        return conn.subscribe(target, timeout=self.timeout)

    def _stop_all(self) -> None:
        views, self._views = self._views, []
        for view in views:
            view.stop()
        super()._stop_all()
