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

from ...capture import DecodeArg, Refresher

if TYPE_CHECKING:
    from ...client import Connection, Subscription

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
                                layout=W.Layout(width="80px")).add_class("nb-live-stop")
        self._error = W.HTML(layout=W.Layout(display="none")).add_class("nb-live-error")
        self._out = W.Output().add_class("nb-live-output")
        head: list[W.Widget] = [self._status, self._button]
        if title:
            head.insert(0, W.HTML(f"<b>{html.escape(title)}</b>").add_class("nb-live-title"))
        super().__init__([W.HBox(head, layout=W.Layout(align_items="center")), self._error,
                          self._out])
        self.add_class("nb-live")
        #: The newest successful result of `fn` (None before the first one).
        self.result: Any = None
        self._refresher = Refresher(source, fn, every=every, decode=decode,
                                    on_result=self._show, on_error=self._show_error,
                                    on_state=self._show_state)
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
        self._status.value = ("<span style='font-family: monospace; font-size: 12px'>"
                              f"{html.escape(line)}</span>")
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
