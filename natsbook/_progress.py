"""A progress display for long runs (stream reads, frame replays): an ipywidgets bar inside a
kernel, else a throttled line on stderr."""

from __future__ import annotations

import sys
import time
from typing import Any

__all__ = ["Progress", "in_kernel"]

#: Seconds between two redraws: the display never updates faster than 10 Hz.
INTERVAL = 0.1


def in_kernel() -> bool:
    """True inside a Jupyter kernel (checked without importing IPython)."""
    ip = sys.modules.get("IPython")
    if ip is None:
        return False
    shell = ip.get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


class Progress:
    """A progress bar in a kernel, else a ``label: n/total (pct%)`` line on stderr.

    Args:
        total: how many things the run expects.
        label: the bar's description, the line's prefix.
        enabled: True shows it (the stderr line even when stderr is not a terminal); False
            shows nothing; None shows the bar in a kernel, the line only on a terminal.
        transient: close() takes the display away (a read whose result is what matters);
            otherwise it stays with the final count (a replay, as a record of what was sent).
    """

    def __init__(self, total: int, label: str, enabled: bool | None = True, *,
                 transient: bool = False) -> None:
        self.total = max(total, 0)
        self.label = label
        self.transient = transient
        self.done = 0
        self._bar: Any = None
        self._line = False
        self._width = 0
        self._next = 0.0
        if enabled is False:
            return
        if in_kernel():
            try:
                import ipywidgets
                from IPython.display import display

                self._bar = ipywidgets.IntProgress(value=0, max=max(total, 1),
                                                   description=label)
                display(self._bar)
                return
            except Exception:  # no widgets: fall back to the text line
                self._bar = None
        self._line = enabled is True or sys.stderr.isatty()

    def update(self, done: int) -> None:
        """Record `done`; the display follows at most every INTERVAL seconds."""
        self.done = done
        now = time.monotonic()
        if now >= self._next:
            self._next = now + INTERVAL
            self._draw()

    def close(self, done: int | None = None) -> None:
        """End the display (with `done` as the final count, when given)."""
        if done is not None:
            self.done = done
        if self._bar is not None:
            if self.transient:
                self._bar.close()
            else:
                self._draw()
                self._bar.bar_style = "success"
        elif self._line:
            if self.transient:
                sys.stderr.write("\r" + " " * self._width + "\r")
            else:
                self._draw()
                sys.stderr.write("\n")
            sys.stderr.flush()

    def _draw(self) -> None:
        if self._bar is not None:
            self._bar.value = min(self.done, self._bar.max)
        elif self._line:
            pct = 100.0 * self.done / self.total if self.total else 100.0
            text = f"{self.label}: {self.done:,}/{self.total:,} ({pct:5.1f}%)"
            self._width = max(self._width, len(text))
            sys.stderr.write("\r" + text)
            sys.stderr.flush()
