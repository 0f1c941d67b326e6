"""Pick a server's listener by transport, for tests run over both TCP and WebSocket."""

from __future__ import annotations

from natsbook import LocalServer

__all__ = ["url_of", "with_userinfo"]


def url_of(srv: LocalServer, transport: str) -> str:
    """``srv.url`` for "tcp", ``srv.ws_url`` (ws:// or wss://) for "ws"."""
    if transport == "tcp":
        return srv.url
    assert transport == "ws", transport
    assert srv.ws_url, "start the server with websocket=True (or a websocket block body)"
    return srv.ws_url


def with_userinfo(url: str, userinfo: str) -> str:
    """``nats://host:port`` + ``"alice:pw"`` -> ``nats://alice:pw@host:port`` (any scheme)."""
    scheme, rest = url.split("://", 1)
    return f"{scheme}://{userinfo}@{rest}"
