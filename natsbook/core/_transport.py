"""Server addresses, credentials, TLS and the connection handshake (blocking, with deadlines)."""

from __future__ import annotations

import base64
import dataclasses
import os
import re
import socket
import ssl
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast
from urllib.parse import unquote, urlsplit

from .._version import __version__
from ..errors import (
    AuthError,
    BadInputError,
    ConnectError,
    ProtocolError,
    ServerError,
    TLSError,
    WebSocketClosedError,
)
from ..wire._info import check_info
from ..wire._protocol import CRLF, PING, decode_info, encode_connect
from ._websocket import upgrade

__all__ = ["Credentials", "ServerURL", "handshake", "parse_url"]

_AUTH_ERRORS = ("authorization violation", "authentication timeout", "user authentication",
                "authentication expired", "account authentication")


@dataclass(frozen=True, slots=True)
class ServerURL:
    """One server of the pool. Credentials from the URL are kept apart and never printed."""

    scheme: str
    host: str
    port: int
    user: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)
    discovered: bool = False
    #: HTTP path of a ws:// or wss:// URL (e.g. "/nats" behind a proxy); "" means "/".
    path: str = ""

    @property
    def websocket(self) -> bool:
        return self.scheme in ("ws", "wss")

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}{self.path}"

    def __str__(self) -> str:
        return self.url

    def __repr__(self) -> str:
        return f"ServerURL({self.url!r})"


_SCHEME_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*")

# Split a URL list only where a new scheme starts, so a password holding "," stays whole.
_NEXT_URL_RE = re.compile(rf",(?=\s*{_SCHEME_RE.pattern}://)")


def split_urls(text: str) -> list[str]:
    """A comma-separated server list as ``connect()`` and ``$NATS_URL`` take it. With
    credentials in it, a comma splits only where a new ``scheme://`` starts, so a token or
    password holding "," stays whole (and is never taken for a host name); without any "@",
    every comma splits (``host1:4222,host2:4222``)."""
    parts = _NEXT_URL_RE.split(text) if "@" in text else text.split(",")
    return [p.strip() for p in parts if p.strip()]


def redact_url(url: str) -> str:
    """`url` (one, or a comma-separated list) with any user, password or token shown as
    ``***``: everything between the scheme and the last "@" is hidden (where `parse_url`
    splits credentials off), so a secret holding "@", ":", ",", "#", "/" or "?" is covered
    too. For printing a URL a user typed."""
    out = []
    for part in _NEXT_URL_RE.split(url):
        scheme, sep, rest = part.partition("://")
        if not sep or not _SCHEME_RE.fullmatch(scheme.strip()):
            scheme, sep, rest = "", "", part  # as parse_url: "user:pa://ss@host" has no scheme
        if "@" in rest:
            rest = "***@" + rest.rsplit("@", 1)[1]
        out.append(scheme + sep + rest)
    return ",".join(out)




def parse_url(text: str, *, discovered: bool = False) -> ServerURL:
    """Parse ``nats://user:pass@host:port``, ``tls://token@host``, ``host:port``, ``host``,
    or a WebSocket URL ``ws://host:port/path`` / ``wss://...`` (ports 80 / 443 by default).

    Credentials are split off before the URL parser sees the rest, at the *last* ``@``: a
    token or password may hold ``#``, ``/``, ``?``, ``@`` or ``:`` as typed (a URL parser would
    take the text after ``#`` or ``/`` for the host and look the secret up in DNS). The
    user-info is ``user:password`` split at its first ``:`` (so a password may hold ``:``,
    a token may not: write it ``%3A``), else a token. ``%XX`` sequences in it are decoded
    (as nats.go and every URL parser do), so a literal ``%`` followed by two hex digits must be
    written ``%25``; any other ``%`` is kept as typed. A WebSocket path holding ``@`` must
    write it ``%40``. No error message quotes the user-info.
    """
    raw = text.strip()
    if not raw:
        raise BadInputError("empty server URL - e.g. nats://127.0.0.1:4222")
    head, sep, rest = raw.partition("://")
    if not sep or not _SCHEME_RE.fullmatch(head):
        # No scheme; "://" inside a secret ("user:pa://ss@host") is not one either.
        head, rest = "nats", raw
    scheme = head.lower()
    userinfo, at, hostpart = rest.rpartition("@")
    if scheme not in ("nats", "tls", "ws", "wss"):
        shown = f" {scheme!r}" if not at else ""  # the text before :// may be a secret's
        raise BadInputError(f"unsupported URL scheme{shown} in a server URL - use nats://, "
                            "tls://, ws:// or wss://")
    try:
        parts = urlsplit(f"{scheme}://{hostpart}")
        parts.hostname  # noqa: B018  (an unbalanced "[::1" raises here or above)
    except ValueError:
        shown = f" {hostpart!r}" if len(hostpart) <= 200 else ""
        raise BadInputError(f"bad host in server URL{shown} - use nats://host:4222 or "
                            "nats://[::1]:4222") from None
    path = ""
    if scheme in ("ws", "wss"):
        path = parts.path if parts.path not in ("", "/") else ""
        if parts.query:
            path += "?" + parts.query
    try:
        port = parts.port or {"ws": 80, "wss": 443}.get(scheme, 4222)
    except ValueError:
        raise BadInputError(f"bad port in server URL {parts.hostname}:... - "
                            "use nats://host:4222") from None
    host = parts.hostname or "127.0.0.1"
    user = password = token = None
    if at:
        name, colon, secret = userinfo.partition(":")
        if colon:
            user, password = unquote(name), unquote(secret)
        else:
            token = unquote(name) or None
    return ServerURL(scheme, host, port, user, password, token, discovered, path)


_CREDS_RE = re.compile(
    r"\s*(?:(?:[-]{3,}.*[-]{3,}\r?\n)([\w\-.=]+)(?:\r?\n[-]{3,}.*[-]{3,}(\r?\n|\Z)))",
    re.MULTILINE,
)


@dataclass(frozen=True, slots=True)
class Credentials:
    """Everything secret for one connection. repr() never shows a secret."""

    user: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)
    nkey_seed: bytes | None = field(default=None, repr=False)
    jwt: str | None = field(default=None, repr=False)

    def __repr__(self) -> str:
        kinds = [k for k in ("user", "password", "token", "nkey_seed", "jwt") if getattr(self, k)]
        return f"Credentials({', '.join(kinds) or 'none'})"

    @staticmethod
    def load_creds(path: str | os.PathLike[str]) -> tuple[str, bytes]:
        """Read a JWT ``.creds`` file: (user JWT, nkey seed)."""
        try:
            text = Path(path).expanduser().read_text()
        except OSError as exc:
            raise BadInputError(f"cannot read creds file {os.fspath(path)!r}: {exc.strerror} - "
                                "check the path") from None
        found = [m.group(1) for m in _CREDS_RE.finditer(text)]
        if len(found) < 2 or not found[1].startswith("SU"):
            raise BadInputError(f"{os.fspath(path)!r} is not a NATS .creds file (expected a user "
                                "JWT block and a USER NKEY SEED block) - create it with nsc")
        _check_seed(found[1].encode())
        return found[0], found[1].encode()

    @staticmethod
    def load_seed(seed: str | bytes | os.PathLike[str]) -> bytes:
        """An NKey seed given as the seed itself or as a path to a file holding it."""
        if isinstance(seed, bytes):
            value = seed.strip()
        elif isinstance(seed, str) and seed.strip().startswith("SU"):
            value = seed.strip().encode()
        else:
            try:
                text = Path(seed).expanduser().read_text()
            except OSError as exc:
                raise BadInputError(f"cannot read nkey seed file: {exc.strerror} - pass the "
                                    "seed (SU...) or a path to a file holding it") from None
            m = re.search(r"SU[A-Z2-7]{50,}", text)
            if not m:
                raise BadInputError("nkey seed file holds no user seed (SU...)")
            value = m.group(0).encode()
        if not value.startswith(b"SU"):
            raise BadInputError("nkey seed must be a user seed starting with 'SU'")
        _check_seed(value)
        return value


def _check_seed(seed: bytes) -> None:
    """Fail at connect() time, before any socket, on a seed nkeys cannot use."""
    _sign(seed, "natsbook-seed-check")


def _sign(seed: bytes, nonce: str) -> tuple[str, str]:
    import nkeys

    try:
        kp = nkeys.from_seed(seed)
    except Exception:  # nkeys' own errors: keep them inside natsbook's tree, seed unprinted
        raise BadInputError("the NKey seed is not valid (a user seed is 58 characters "
                            "starting with 'SU') - check the seed or .creds file") from None
    try:
        sig = base64.urlsafe_b64encode(kp.sign(nonce.encode())).rstrip(b"=").decode()
        return sig, kp.public_key.decode()
    finally:
        kp.wipe()


@dataclass(slots=True)
class TLSOptions:
    ca: str | None = None
    cert: str | None = None
    key: str | None = None
    handshake_first: bool = False
    hostname: str | None = None
    context: ssl.SSLContext | None = None
    #: TLS on every server of the pool, discovered ones included: set by connect() for a
    #: tls:// or wss:// URL in the pool (or TLS options, see `wanted`), and by handshake()
    #: once a server has been spoken to over TLS. Never cleared: no server after that gets
    #: credentials in plaintext (as nats.go's Secure option, which it also turns on for good
    #: when a server requires TLS).
    required: bool = False

    @property
    def wanted(self) -> bool:
        """TLS options were given: TLS on every server."""
        return bool(self.ca or self.cert or self.key or self.hostname or self.handshake_first
                    or self.context)

    def make_context(self) -> ssl.SSLContext:
        if self.context is not None:
            return self.context
        try:
            ctx = ssl.create_default_context(cafile=self.ca)
            if self.cert:
                ctx.load_cert_chain(self.cert, self.key)
        except (OSError, ssl.SSLError) as exc:
            raise TLSError(f"cannot load TLS files ({exc}) - check tls_ca / tls_cert / tls_key "
                           "paths and formats (PEM)") from None
        return ctx


def _recv_line(sock: socket.socket, buf: bytearray, deadline: float) -> bytes:
    while True:
        i = buf.find(CRLF)
        if i >= 0:
            line = bytes(buf[:i])
            del buf[:i + 2]
            return line
        if len(buf) > 64 * 1024:
            raise ProtocolError("server sent a line longer than 64 KiB during the handshake")
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        sock.settimeout(remaining)
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionResetError("server closed the connection during the handshake")
        buf += chunk


def _wrap(sock: socket.socket, tls: TLSOptions, host: str, url: str,
          deadline: float, no_tls_hint: str | None = None) -> ssl.SSLSocket:
    ctx = tls.make_context()
    sock.settimeout(max(deadline - time.monotonic(), 0.01))
    try:
        return ctx.wrap_socket(sock, server_hostname=tls.hostname or host)
    except ssl.SSLCertVerificationError as exc:
        raise TLSError(f"TLS certificate of {url} not trusted ({exc.verify_message}) - pass "
                       "tls_ca= with the CA that signed the server certificate", url) from None
    except ssl.SSLError as exc:
        if no_tls_hint:
            raise TLSError(f"{no_tls_hint} (TLS handshake: {exc.reason or exc})", url) from None
        raise TLSError(f"TLS handshake with {url} failed ({exc.reason or exc}) - check that the "
                       "server speaks TLS on this port and tls_handshake_first matches", url) \
            from None
    except TimeoutError:
        if no_tls_hint:
            raise TLSError(f"{no_tls_hint} (TLS handshake timed out)", url) from None
        raise TLSError(f"TLS handshake with {url} timed out - check that the server speaks TLS "
                       "on this port and tls_handshake_first matches", url) from None


def _upgrade(sock: socket.socket, server: ServerURL, timeout: float,
             deadline: float) -> socket.socket:
    try:
        stream = upgrade(sock, server.host, server.port, server.path, server.url, deadline)
    except TimeoutError:
        raise ConnectError(f"{server.url} did not answer the WebSocket upgrade within "
                           f"{timeout:g}s - check the port and path (and wss:// if it speaks "
                           "TLS)", server.url) from None
    except ssl.SSLError as exc:
        raise TLSError(f"TLS error from {server.url} during the WebSocket upgrade "
                       f"({exc.reason or exc})", server.url) from None
    # The stream has the socket methods the engine and the handshake use (fileno, recv, send,
    # sendall, settimeout, setblocking, pending, close); typed as one to keep them unchanged.
    return cast(socket.socket, stream)


def handshake(server: ServerURL, creds: Credentials, tls: TLSOptions, *, name: str | None,
              timeout: float, echo: bool = True) -> tuple[socket.socket, dict[str, Any], bytes]:
    """Open a socket to `server`, agree on TLS, send CONNECT and wait for the PONG.

    Returns (socket in blocking mode, server INFO, bytes already received after the PONG).

    Raises:
        ConnectError / AuthError / TLSError: with a message naming the cause and the fix.
    """
    url = server.url
    deadline = time.monotonic() + timeout
    try:
        raw = socket.create_connection((server.host, server.port), timeout=timeout)
    except TimeoutError:
        raise ConnectError(f"no answer from {url} within {timeout:g}s - is the server up and "
                           "the address right?", url) from None
    except OSError as exc:
        raise ConnectError(f"cannot reach {url}: {exc.strerror or exc} - start a server (e.g. "
                           "natsbook.local_server()) or check the URL", url) from None
    sock: socket.socket = raw
    try:
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        want_tls = tls.wanted or tls.required or server.scheme == "tls"
        is_tls = False
        buf = bytearray()
        if server.websocket:
            # TLS (wss://, or TLS options as nats.go does) wraps the WebSocket, not NATS.
            if server.scheme == "wss" or tls.wanted or tls.required:
                sock = _wrap(sock, tls, server.host, url, deadline, no_tls_hint=(
                    f"TLS was requested (wss:// or TLS options) but {url} does not offer TLS "
                    "on its WebSocket port - refusing to send credentials in plaintext; use "
                    "ws:// without TLS options, or add tls to the server's websocket block"))
                is_tls = True
            sock = _upgrade(sock, server, timeout, deadline)
        elif tls.handshake_first:
            sock = _wrap(sock, tls, server.host, url, deadline)
            is_tls = True
        try:
            line = _recv_line(sock, buf, deadline)
        except TimeoutError:
            hint = (" - the server may expect TLS first: pass tls_handshake_first=True"
                    if not is_tls and not server.websocket else "")
            raise ConnectError(f"{url} sent no INFO within {timeout:g}s{hint}", url) from None
        if not line.startswith(b"INFO "):
            raise ProtocolError(f"{url} is not a NATS server (first line {line[:40]!r})")
        try:
            info = check_info(decode_info(line))
        except ProtocolError as exc:
            raise ProtocolError(f"{url} sent a bad INFO: "
                                f"{str(exc).removeprefix('natsbook: ')}") from None
        if not is_tls and not server.websocket:
            offers = info.get("tls_required") or info.get("tls_available")
            if want_tls and not offers:
                if server.discovered or not (tls.wanted or server.scheme == "tls"):
                    # nats.go: "secure connection not available".
                    found = " (announced by the cluster)" if server.discovered else ""
                    raise TLSError(f"TLS is required on every server of this connection (a "
                                   f"tls:// URL, TLS options or a server that required TLS), "
                                   f"but {url}{found} offers no TLS - refusing to send "
                                   "credentials in plaintext; enable TLS on that server", url)
                raise TLSError(f"TLS was requested but {url} offers no TLS - refusing to send "
                               "credentials in plaintext; use nats:// without TLS options, or "
                               "enable TLS on the server", url)
            if want_tls or info.get("tls_required"):
                if buf:
                    raise ProtocolError(f"{url} sent data before the TLS upgrade")
                try:
                    sock = _wrap(sock, tls, server.host, url, deadline)
                except TLSError as exc:
                    if not want_tls:
                        inner = str(exc).removeprefix("natsbook: ")
                        raise TLSError(f"{url} requires TLS (tls_required in its INFO): {inner}",
                                       url) from None
                    raise
                is_tls = True
        opts: dict[str, Any] = {
            "verbose": False, "pedantic": False, "tls_required": is_tls,
            "lang": "python-natsbook", "version": __version__, "protocol": 1,
            "echo": echo, "headers": True, "no_responders": True,
        }
        if name:
            opts["name"] = name
        user = creds.user or server.user
        password = creds.password or server.password
        token = creds.token or server.token
        if user:
            opts["user"] = user
            opts["pass"] = password or ""
        elif token:
            opts["auth_token"] = token
        if creds.nkey_seed:
            nonce = info.get("nonce")
            if not nonce:
                raise AuthError(f"{url} sent no nonce to sign; it is not set up for NKey/JWT "
                                "auth - drop nkey_seed/creds or check the server config", url)
            sig, pub = _sign(creds.nkey_seed, nonce)
            opts["sig"] = sig
            if creds.jwt:
                opts["jwt"] = creds.jwt
            else:
                opts["nkey"] = pub
        sock.sendall(encode_connect(opts) + PING)
        while True:
            try:
                line = _recv_line(sock, buf, deadline)
            except TimeoutError:
                raise ConnectError(f"{url} did not answer CONNECT within {timeout:g}s", url) \
                    from None
            except WebSocketClosedError as exc:
                raise ConnectError(str(exc), url) from None
            except (ConnectionError, OSError):
                raise AuthError(f"{url} closed the connection after CONNECT - usually "
                                "refused credentials: check token/user/password/creds", url) \
                    from None
            if line.startswith(b"PONG"):
                break
            if line.startswith(b"-ERR"):
                text = line[4:].decode("utf-8", "replace").strip().strip("'")
                if any(k in text.lower() for k in _AUTH_ERRORS):
                    raise AuthError(f"{text.lower()} from {url} - check token/user/password/"
                                    "creds", url)
                raise ServerError(text, f"natsbook: {url} refused the connection: {text!r}")
            if line.startswith(b"INFO "):
                continue
            # PING, +OK or anything else: ignore during the handshake
        sock.settimeout(None)
        if is_tls:
            tls.required = True  # from now on no server of this connection goes without
        return sock, info, bytes(buf)
    except BaseException:
        try:
            sock.close()
        except OSError:
            pass
        raise


#: At most this many discovered servers join a pool: a cluster announcing more (a hostile or
#: misconfigured server) cannot grow the pool, or the time each INFO and reconnect takes.
MAX_DISCOVERED = 256


def add_discovered(pool: list[ServerURL], current: ServerURL, urls: list[str],
                   tls: TLSOptions | None = None, cap: int = MAX_DISCOVERED) -> list[str]:
    """Add the servers a cluster announced (INFO ``connect_urls``) to `pool`, in place, and
    prune the discovered ones it no longer announces; return what was skipped, to report.

    nats-server tells a WebSocket client the cluster's WebSocket URLs and a TCP client its
    client ports (as nats.go expects): a URL of the other kind never joins the pool. Announced
    servers carry no credentials: they get those of the first URL we were given (as other NATS
    clients do), so that a move to them can authenticate. When the connection's `tls` options
    require TLS, an announced ``nats://`` / ``ws://`` URL joins as ``tls://`` / ``wss://``, as
    nats.go adds announced servers with the scheme of a secure connection (handshake() refuses
    a server that offers no TLS either way).

    As nats.go: a discovered server missing from a non-empty announcement leaves the pool
    (configured servers and `current` never do). At most `cap` discovered servers are kept;
    an announced URL that does not parse is skipped, never raised.
    """
    notes: list[str] = []
    secure = tls is not None and tls.required
    announced: list[ServerURL] = []
    for url in urls:
        try:
            s = parse_url(url if "://" in url else f"{current.scheme}://{url}", discovered=True)
        except BadInputError as exc:  # parse_url turns urlsplit's ValueError into it
            text = str(exc).removeprefix("natsbook: ")
            notes.append(f"ignored an announced server URL {redact_url(url)[:100]!r}: "
                         f"{text[:200]}")
            continue
        if s.websocket != current.websocket:
            continue
        announced.append(s)
    if announced:
        keep = {(s.host, s.port) for s in announced}
        pool[:] = [s for s in pool if not s.discovered or s == current
                   or (s.host, s.port) in keep]
    known = {(s.host, s.port) for s in pool}
    count = sum(1 for s in pool if s.discovered)
    over = False
    for s in announced:
        if (s.host, s.port) in known:
            continue
        if count >= cap:
            over = True
            continue
        if secure and s.scheme in ("nats", "ws"):
            s = dataclasses.replace(s, scheme="tls" if s.scheme == "nats" else "wss")
        origin = pool[0]
        if not (s.user or s.token) and (origin.user or origin.token):
            s = dataclasses.replace(s, user=origin.user, password=origin.password,
                                    token=origin.token)
        pool.append(s)
        known.add((s.host, s.port))
        count += 1
    if over:
        notes.append(f"the cluster announced more than {cap} servers: the rest are ignored "
                     f"(at most {cap} discovered servers join the pool)")
    return notes
