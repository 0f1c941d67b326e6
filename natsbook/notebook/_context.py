"""natscli contexts: read the connection settings the ``nats`` CLI already keeps.

A context is a JSON file ``$XDG_CONFIG_HOME/nats/context/NAME.json`` (``~/.config`` when
``XDG_CONFIG_HOME`` is unset); ``nats/context.txt`` names the selected one and ``$NATS_CONTEXT``
overrides the selection, as in natscli (see the NATS ADR "NATS Configuration Contexts").
Secrets (token, password, credentials inside the URL) never appear in ``repr()``/``str()``.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..client import redact_url, split_urls
from ..errors import BadInputError

__all__ = ["NatsContext", "context_dir", "list_contexts", "load_context", "selected_context"]

_NAME_RE = re.compile(r"^[A-Za-z0-9_.@-]+$")
# Context fields that change how to connect but that natsbook cannot honour: refusing them is
# better than connecting somewhere or as someone else than the context says.
_UNSUPPORTED = {
    "nsc": "nsc:// profiles - run `nsc generate creds` and point \"creds\" at the file",
    "user_jwt": "a bare user JWT - use a .creds file (\"creds\") instead",
    "socks_proxy": "SOCKS proxies",
    "windows_cert_store": "the Windows certificate store - use \"cert\"/\"key\"/\"ca\" files",
}


def config_home() -> Path:
    """``$XDG_CONFIG_HOME``, else ``~/.config``."""
    xdg = os.environ.get("XDG_CONFIG_HOME", "").strip()
    return Path(xdg) if xdg else Path.home() / ".config"


def context_dir() -> Path:
    """The directory holding natscli context files."""
    return config_home() / "nats" / "context"


def list_contexts() -> list[str]:
    """Names of the contexts on this machine, sorted."""
    d = context_dir()
    if not d.is_dir():
        return []
    return sorted(p.stem for p in d.glob("*.json"))


def selected_context() -> str | None:
    """The context natscli would use: ``$NATS_CONTEXT``, else ``nats/context.txt``, else None."""
    env = os.environ.get("NATS_CONTEXT", "").strip()
    if env:
        return env
    try:
        name = (config_home() / "nats" / "context.txt").read_text().strip()
    except OSError:
        return None
    return name or None


@dataclass(slots=True)
class NatsContext:
    """The settings of one natscli context (paths already ``~``-expanded)."""

    name: str
    path: Path
    description: str = ""
    url: str = ""
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)
    creds: str | None = None
    nkey: str | None = None
    cert: str | None = None
    key: str | None = None
    ca: str | None = None
    tls_first: bool = False
    jetstream_domain: str | None = None
    jetstream_api_prefix: str | None = None
    inbox_prefix: str | None = None

    def __repr__(self) -> str:
        auth = [k for k in ("user", "password", "token", "creds", "nkey") if getattr(self, k)]
        if redact_url(self.url) != self.url:
            auth.insert(0, "url")
        return (f"NatsContext({self.name!r}, url={redact_url(self.url)!r}, "
                f"auth={'+'.join(auth) or 'none'})")

    __str__ = __repr__

    def connect_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for :func:`natsbook.connect` (only the settings that are set)."""
        out: dict[str, Any] = {}
        if self.url:
            out["servers"] = split_urls(self.url)
        for key, arg in (("token", "token"), ("user", "user"), ("password", "password"),
                         ("creds", "creds"), ("nkey", "nkey_seed"), ("ca", "tls_ca"),
                         ("cert", "tls_cert"), ("key", "tls_key")):
            value = getattr(self, key)
            if value:
                out[arg] = value
        if self.tls_first:
            out["tls_handshake_first"] = True
        return out


def _path(value: Any, what: str, ctx: str, *, allow_env: bool = False) -> str | None:
    if not value:
        return None
    if not isinstance(value, str):
        raise BadInputError(f"context {ctx!r}: {what!r} must be a string path")
    if value.startswith("file://"):
        value = value[len("file://"):]
    elif allow_env and value.startswith("env://"):
        var = value[len("env://"):]
        got = os.environ.get(var)
        if not got:
            raise BadInputError(f"context {ctx!r}: {what!r} reads ${var}, which is not set - "
                                "export it before starting Jupyter")
        return got
    elif re.match(r"^[a-z][a-z0-9+.-]*:", value) and not re.match(r"^[A-Za-z]:[\\/]", value):
        scheme = value.split(":", 1)[0]
        raise BadInputError(f"context {ctx!r}: {what!r} uses a {scheme}: URI, which natsbook "
                            "cannot resolve - give a file path instead")
    return os.path.expanduser(value)


def load_context(name: str | None = None) -> NatsContext:
    """Read a natscli context.

    Args:
        name: the context's name; None or "" means the selected one (``$NATS_CONTEXT``, else
            ``context.txt``).

    Returns:
        The parsed context.

    Raises:
        BadInputError: no such context, none selected, a bad file, or a setting natsbook cannot
            honour (nsc profiles, bare JWTs, proxies, the Windows certificate store).
    """
    if not name:
        name = selected_context()
        if not name:
            raise BadInputError("no natscli context selected - give --context NAME, set "
                                "$NATS_CONTEXT, or run `nats context select`")
    if not _NAME_RE.match(name) or name.startswith("."):
        raise BadInputError(f"invalid context name {name!r} - use letters, digits, '.', '_', "
                            "'-' or '@'")
    path = context_dir() / f"{name}.json"
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        known = list_contexts()
        hint = (f"known contexts: {', '.join(known)}" if known else
                f"no contexts in {context_dir()} - create one with `nats context add`")
        raise BadInputError(f"no natscli context {name!r} ({path}) - {hint}") from None
    except OSError as exc:
        raise BadInputError(f"cannot read context file {path}: {exc.strerror}") from None
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise BadInputError(f"context file {path} is not valid JSON ({exc.msg} at line "
                            f"{exc.lineno}) - fix it or recreate it with `nats context edit`"
                            ) from None
    if not isinstance(data, dict):
        raise BadInputError(f"context file {path} must hold a JSON object")
    for key, why in _UNSUPPORTED.items():
        if data.get(key):
            raise BadInputError(f"context {name!r} uses {key!r}: natsbook does not support {why}")

    def text(key: str) -> str | None:
        value = data.get(key)
        if value is None or value == "":
            return None
        if not isinstance(value, str):
            raise BadInputError(f"context {name!r}: {key!r} must be a string")
        return value

    return NatsContext(
        name=name, path=path, description=text("description") or "", url=text("url") or "",
        user=text("user"), password=text("password"), token=text("token"),
        creds=_path(data.get("creds"), "creds", name),
        nkey=_path(data.get("nkey"), "nkey", name, allow_env=True),
        cert=_path(data.get("cert"), "cert", name), key=_path(data.get("key"), "key", name),
        ca=_path(data.get("ca"), "ca", name), tls_first=bool(data.get("tls_first")),
        jetstream_domain=text("jetstream_domain"),
        jetstream_api_prefix=text("jetstream_api_prefix"), inbox_prefix=text("inbox_prefix"),
    )
