"""A view that refreshes as traffic arrives: ``sub.live(fn)``, ``conn.live(fn)``, ``%nats_live``.

The refresher thread (``natsbook.capture._live.Refresher``) computes the result; this widget
only turns it into trait values: the result becomes the ``outputs`` of an ``Output`` (a
DataFrame as its HTML table, a matplotlib figure as a PNG, anything else by its rich repr), an
error becomes an HTML box above the last good result. Nothing here uses ``with output:`` (that
is not safe from a thread); renders are at most every ``every`` >= 0.1 s, so at most ten trait
updates a second.
"""

from __future__ import annotations

import base64
import html
import io
import sys
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import ipywidgets as W
import pandas as pd

from ...capture import ATTR, DecodeArg, Refresher
from ...client import Connection
from .._display import frame_display_html

if TYPE_CHECKING:
    from ...capture import Capture
    from ...client import Subscription

__all__ = ["LiveView", "mimebundle", "stop_live_views"]

#: Every live view made in this process (weak: a closed, forgotten one just goes away).
_VIEWS: weakref.WeakSet[LiveView] = weakref.WeakSet()


def stop_live_views() -> int:
    """Stop every live view of this process that still refreshes; returns how many did."""
    running = [v for v in list(_VIEWS) if v.running]
    for view in running:
        view.stop()
    return len(running)


def _is_figure(obj: Any) -> bool:
    return type(obj).__module__.startswith("matplotlib.") and hasattr(obj, "savefig") \
        and hasattr(obj, "axes")


def mimebundle(obj: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """The (data, metadata) display bundle of `obj`, made off the kernel thread."""
    if _is_figure(obj):
        buf = io.BytesIO()
        obj.savefig(buf, format="png", bbox_inches="tight")
        plt = sys.modules.get("matplotlib.pyplot")
        if plt is not None:
            # A pyplot figure left open would be shown again by the inline backend.
            plt.close(obj)
        png = base64.b64encode(buf.getvalue()).decode("ascii")
        return {"image/png": png, "text/plain": repr(obj)}, {}
    if isinstance(obj, pd.DataFrame) and obj.attrs.get(ATTR):
        # natsbook's own tables look the same in a view as in a cell, extension loaded or not
        return {"text/html": frame_display_html(obj), "text/plain": repr(obj)}, {}
    try:
        from IPython import get_ipython

        ip = get_ipython()
    except ImportError:  # pragma: no cover - IPython is a dependency
        ip = None
    if ip is not None:
        data, md = ip.display_formatter.format(obj)
        return dict(data), dict(md)
    data = {"text/plain": repr(obj)}
    if hasattr(obj, "_repr_html_"):
        rich = obj._repr_html_()
        if rich:
            data["text/html"] = rich
    return data, {}


#: Layout of a view's parts, so that two or three views side by side (``HBox([a, b])``) share
#: the row: the title keeps one line (an ellipsis, with the whole title as its tooltip, only
#: when it does not fit), the Stop button is never squeezed, the status has its own line, and
#: a wide table or chart stays inside its view.
_CSS = """<style>
.nb-live{min-width:0;box-sizing:border-box;padding-right:8px}
.widget-hbox>.nb-live{flex:1 1 0%}
.nb-live-head{min-width:0;align-items:center;gap:8px}
.nb-live-title{flex:1 1 auto;min-width:0;overflow:hidden}
.nb-live-title .widget-html-content,.nb-live-status .widget-html-content{min-width:0;
 overflow:hidden}
.nb-live-title .nb-live-title-text{white-space:nowrap;overflow:hidden;text-overflow:ellipsis;
 font-weight:bold}
.nb-live-stop{flex:0 0 auto;width:auto;min-width:max-content}
.nb-live-status{min-width:0;overflow:hidden}
.nb-live-status .nb-live-line{white-space:nowrap;overflow:hidden;text-overflow:ellipsis;
 font-family:var(--jp-code-font-family,monospace);font-size:12px;color:#555}
.nb-live-output{min-width:0;overflow-x:auto}
.nb-live-output img{max-width:100%;height:auto}
</style>"""


class LiveView(W.VBox):
    """``fn(frame)`` (or a SQL query's result) re-rendered when new rows arrive.

    Use :meth:`natsbook.Subscription.live` or :meth:`natsbook.Connection.live` to make one.
    The Stop button, :meth:`stop` and :meth:`close` end the refresher thread (joined); it also
    ends by itself when the capture ends or the connection closes, after a last render.
    """

    def __init__(self, source: Subscription | Connection,
                 fn: Callable[[pd.DataFrame], Any] | str, *, every: float = 1.0,
                 decode: DecodeArg = "auto", title: str | None = None) -> None:
        self._status = W.HTML().add_class("nb-live-status")
        self._button = W.Button(description="Stop", icon="stop",
                                tooltip="stop refreshing this view",
                                layout=W.Layout(width="auto")).add_class("nb-live-stop")
        self._error = W.HTML(layout=W.Layout(display="none")).add_class("nb-live-error")
        self._out = W.Output().add_class("nb-live-output")
        text = html.escape(title or "")
        self._title = W.HTML(f'{_CSS}<div class="nb-live-title-text" title="{text}">{text}</div>'
                             ).add_class("nb-live-title")
        head = W.HBox([self._title, self._button])
        super().__init__([head.add_class("nb-live-head"), self._status, self._error,
                          self._out])
        self.add_class("nb-live")
        #: The newest successful result of `fn` (None before the first one).
        self.result: Any = None
        captures: Callable[[], list[Capture]]
        if isinstance(source, Connection):
            conn = source
            captures = conn.internals.captures  # type: ignore[assignment]
            self._refresher = Refresher(
                captures, lambda: conn.is_closed, conn.sql, fn, with_sub=True,
                why="connection closed", every=every, decode=decode, on_result=self._show,
                on_error=self._show_error, on_state=self._show_state)
        else:
            sub = source
            sub.internals.require_store()
            self._refresher = Refresher(
                lambda: [sub], lambda: not sub.active or sub.internals.connection_closed,
                sub.sql, fn, every=every, decode=decode, on_result=self._show,
                on_error=self._show_error, on_state=self._show_state)
        self._button.on_click(lambda _: self.stop())
        self._refresher.start()
        _VIEWS.add(self)

    # -- called on the refresher thread: traits only -------------------------------------
    def _show(self, result: Any) -> None:
        # The error box goes first and `result` last: whoever sees the new result also sees
        # the widget in the state that goes with it.
        if self._error.layout.display != "none":
            self._error.layout.display = "none"
            self._error.value = ""
        if result is None:
            self._out.outputs = ()
        else:
            data, md = mimebundle(result)
            self._out.outputs = ({"output_type": "display_data", "data": data,
                                  "metadata": md},)
        self.result = result

    def _show_error(self, text: str) -> None:
        last = text.strip().splitlines()[-1] if text.strip() else "error"
        self._error.value = (
            "<details class='nb-error' style='color:#b00020'><summary>"
            f"{html.escape(last)} (the view keeps refreshing)</summary>"
            f"<pre style='font-size:11px'>{html.escape(text)}</pre></details>")
        self._error.layout.display = None

    def _show_state(self, line: str) -> None:
        text = html.escape(line)
        self._status.value = f'<div class="nb-live-line" title="{text}">{text}</div>'
        if line.startswith("■"):
            self._button.disabled = True

    # -- user API ----------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._refresher.running

    @property
    def renders(self) -> int:
        """Renders so far (each one ran `fn`, successfully or not)."""
        return self._refresher.renders

    @property
    def errors(self) -> int:
        """Renders in which `fn` raised (shown in place)."""
        return self._refresher.errors

    @property
    def last_error(self) -> str | None:
        return self._refresher.last_error

    @property
    def every(self) -> float:
        return self._refresher.every

    def stop(self) -> None:
        """Stop refreshing (the last result stays on screen) and join the thread."""
        self._refresher.stop()
        self._button.disabled = True

    def close(self) -> None:
        """Stop, then close the widget."""
        self.stop()
        super().close()
