"""The base of the NATS magics: settings (``%config NatsMagics``), the connection and embedded
server they share, and the helpers every verb uses. The verbs live in ``_magics_connect``,
``_magics_messaging`` and ``_magics_data``; ``magics`` assembles them into ``NatsMagics``."""

from __future__ import annotations

import contextlib
import math
from typing import TYPE_CHECKING, Any

import pandas as pd
from IPython.core.error import UsageError
from IPython.core.magic import Magics
from traitlets import CaselessStrEnum, Float, Int, TraitError, Unicode, validate
from traitlets.config import Configurable

from ._magic_support import FIELD_RE, MAX_SECONDS, NOT_CONNECTED, StatusTicker

if TYPE_CHECKING:
    from IPython.core.interactiveshell import InteractiveShell

    from natsbook import Connection, LocalServer


class NatsMagicsBase(Magics, Configurable):
    """Settings and shared state of ``NatsMagics`` (``%config NatsMagics`` lists them)."""

    timeout = Float(5.0, help="Seconds to wait for a reply (%nats_req), for the server to "
                              "confirm a publish or subscribe, and for each connect attempt."
                    ).tag(config=True)
    decode = CaselessStrEnum(["auto", "json", "text", "bytes", "msgpack", "cbor"],
                             default_value="auto",
                             help="How %nats_msgs decodes payloads unless --decode is given."
                             ).tag(config=True)
    display_limit = Int(50, help="At most this many rows are shown for %nats_msgs and "
                                 "%nats_subs (the returned DataFrame has every row; 0: pandas' "
                                 "own display.max_rows).").tag(config=True)
    default_server = Unicode("", help="Server URL(s), comma-separated, for %nats_connect "
                                      "without a URL; empty: $NATS_URL, else an embedded "
                                      "nats-server.").tag(config=True)
    live_status = CaselessStrEnum(["auto", "widget", "text", "off"], default_value="auto",
                                  help="%nats_sub's status line: a live widget (in a kernel "
                                       "with ipywidgets), one text line, or nothing."
                                  ).tag(config=True)
    monitor_url = Unicode("", help="Monitoring URL for %nats_server (empty: "
                                   "$NATSBOOK_MONITOR_URL, the embedded server's, else port "
                                   "8222 of the connected host).").tag(config=True)
    status_interval = Float(0.5, help="Seconds between live status updates (0.25-10)."
                            ).tag(config=True)

    def __init__(self, shell: InteractiveShell | None = None, **kwargs: Any) -> None:
        super().__init__(shell=shell, **kwargs)
        self.conn: Connection | None = None
        self.server: LocalServer | None = None
        self._names: dict[int, str] = {}
        self._ticker = StatusTicker(self.status_interval)
        self._limit_restore: dict[str, Any] | None = None

    @validate("timeout")
    def _valid_timeout(self, proposal: Any) -> float:
        value = float(proposal["value"])
        if not (math.isfinite(value) and 0 < value <= MAX_SECONDS):
            raise TraitError(f"NatsMagics.timeout must be > 0 seconds and at most "
                             f"{MAX_SECONDS:,g} (got {value!r})")
        return value

    @validate("display_limit")
    def _valid_limit(self, proposal: Any) -> int:
        if proposal["value"] < 0:
            raise TraitError("NatsMagics.display_limit must be >= 0 (0: no limit of ours)")
        return int(proposal["value"])

    @validate("status_interval")
    def _valid_interval(self, proposal: Any) -> float:
        value = float(proposal["value"])
        if not 0.25 <= value <= 10:
            raise TraitError("NatsMagics.status_interval must be between 0.25 and 10 seconds")
        ticker = getattr(self, "_ticker", None)
        if ticker is not None:
            ticker.interval = value
        return value

    # ------------------------------------------------------------------ helpers
    @property
    def _shell(self) -> InteractiveShell:
        assert self.shell is not None
        return self.shell

    def _require(self) -> Connection:
        conn = self.conn
        if conn is None:
            raise UsageError(NOT_CONNECTED)
        if conn.is_closed:
            raise UsageError(f"the connection to {conn.servers[0]} is closed - run "
                             "%nats_connect to open a new one")
        return conn

    def _expand(self, text: str | None) -> str | None:
        """``{expr}`` from the user's namespace, as IPython does for line magics, but field by
        field: JSON such as ``{"id": 1}`` stays as it is, a field that cannot be evaluated is
        left alone and ``{{x}}`` gives a literal ``{x}``.
        """
        if not text or "{" not in text:
            return text
        return "".join(part or "" for part in self._template(text, counter=False))

    def _template(self, text: str, *, counter: bool) -> list[str | None]:
        """`text` expanded as `_expand` does, split at the ``{i}`` counter fields when
        `counter` (each ``None`` in the list): one pass, so ``{{i}}`` stays a literal ``{i}``
        and a notebook variable named ``i`` never stands in for the counter."""
        parts: list[str | None] = []
        pos = 0
        for m in FIELD_RE.finditer(text):
            parts.append(text[pos:m.start()])
            pos = m.end()
            if m.group(1) is not None:
                parts.append("{" + m.group(1) + "}")
                continue
            expr = m.group(2).strip()
            if counter and expr == "i":
                parts.append(None)
                continue
            try:
                parts.append(str(self._shell.ev(expr)))
            except Exception:
                parts.append(m.group(0))
        parts.append(text[pos:])
        return parts

    def _bind(self, name: str | None, value: Any) -> None:
        if name:
            self._shell.user_ns[name] = value

    def _limit_display(self, rows: int) -> None:
        """Show at most ``display_limit`` rows of the frame this cell returns: pandas' row
        options are lowered for this cell only and restored after it (post_run_cell)."""
        limit = self.display_limit
        current = pd.get_option("display.max_rows")
        if not limit or rows <= limit or (current is not None and current <= limit):
            return
        if self._limit_restore is None:
            self._limit_restore = {"display.max_rows": current,
                                   "display.min_rows": pd.get_option("display.min_rows")}
            self._shell.events.register("post_run_cell", self._restore_display)
        pd.set_option("display.max_rows", limit)
        pd.set_option("display.min_rows", limit)

    def _restore_display(self, *_: Any) -> None:
        saved, self._limit_restore = self._limit_restore, None
        with contextlib.suppress(ValueError):
            self._shell.events.unregister("post_run_cell", self._restore_display)
        for key, value in (saved or {}).items():
            pd.set_option(key, value)

    def _stop_all(self) -> None:
        self._ticker.stop()
        conn, self.conn = self.conn, None
        if conn is not None:
            conn.close()
        self._names.clear()

    def _want_widget(self) -> bool:
        mode = self.live_status.lower()
        if mode == "widget":
            return True
        if mode != "auto":
            return False
        # Only a kernel renders widgets; a terminal would print their repr.
        return getattr(self.shell, "kernel", None) is not None
