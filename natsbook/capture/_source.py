"""What the capture layer reads of the layers above it, named as protocols.

The capture layer never imports a connection or a subscription: SQL, live views, frames over
several captures and replay take any object with these few members. natsbook's
``Subscription`` is a :class:`Capture`; ``Connection`` is a :class:`Publisher`. A type
checker holds both to that (``tests/test_layers.py`` keeps this layer from importing them).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from ._store import CaptureStore

__all__ = ["Capture", "Publisher"]


class Capture(Protocol):
    """One capture: a subscription's subject pattern, its optional table name and store."""

    @property
    def subject(self) -> str: ...

    @property
    def name(self) -> str | None: ...

    @property
    def store(self) -> CaptureStore | None: ...


class Publisher(Protocol):
    """Something that publishes and flushes (what replaying a frame needs)."""

    def publish(self, subject: str, data: Any = b"", *, reply: str | None = None,
                headers: Mapping[str, Any] | None = None) -> None: ...

    def flush(self, timeout: float = 10.0) -> float: ...
