"""Decentralized-auth (operator mode) fixtures for nats-server, built with ``nkeys`` only.

Produces an operator, a system account, an application account and a user, each a
NATS v2 JWT signed by its issuer (operator self-signed -> accounts -> user), plus a
server config fragment using the in-memory resolver and an nsc-style ``.creds`` file.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nkeys

_HEADER = {"typ": "JWT", "alg": "ed25519-nkey"}
_NO_LIMIT = -1


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _json(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def _new_keypair(prefix: int) -> Any:
    """Create a fresh nkeys KeyPair for the given role prefix (operator/account/user)."""
    return nkeys.from_seed(nkeys.encode_seed(os.urandom(32), prefix))


def _public(kp: Any) -> str:
    return bytes(kp.public_key).decode("ascii")


def _encode_jwt(issuer: Any, subject: str, name: str, nats: dict[str, Any]) -> str:
    """Encode and sign NATS v2 claims; jti = base32(sha512/256(claims JSON without jti))."""
    body: dict[str, Any] = {
        "iat": int(time.time()),
        "iss": _public(issuer),
        "name": name,
        "sub": subject,
        "nats": nats,
    }
    digest = hashlib.new("sha512_256", _json(body)).digest()
    claims = {"jti": base64.b32encode(digest).rstrip(b"=").decode("ascii"), **body}
    signing_input = _b64url(_json(_HEADER)) + "." + _b64url(_json(claims))
    signature = issuer.sign(signing_input.encode("ascii"))
    return signing_input + "." + _b64url(signature)


def _account_jwt(operator: Any, account: Any, name: str) -> str:
    limits = {
        "subs": _NO_LIMIT,
        "conn": _NO_LIMIT,
        "leaf": _NO_LIMIT,
        "imports": _NO_LIMIT,
        "exports": _NO_LIMIT,
        "data": _NO_LIMIT,
        "payload": _NO_LIMIT,
        "wildcards": True,
    }
    nats = {
        "limits": limits,
        "default_permissions": {"pub": {}, "sub": {}},
        "type": "account",
        "version": 2,
    }
    return _encode_jwt(operator, _public(account), name, nats)


def _user_jwt(account: Any, user: Any, name: str) -> str:
    nats = {
        "pub": {},
        "sub": {},
        "subs": _NO_LIMIT,
        "data": _NO_LIMIT,
        "payload": _NO_LIMIT,
        "type": "user",
        "version": 2,
    }
    return _encode_jwt(account, _public(user), name, nats)


def format_creds(user_jwt: str, user_seed: bytes) -> str:
    """Render a ``.creds`` file in the same layout ``nsc`` writes."""
    return (
        "-----BEGIN NATS USER JWT-----\n"
        f"{user_jwt}\n"
        "------END NATS USER JWT------\n\n"
        "************************* IMPORTANT *************************\n"
        "NKEY Seed printed below can be used to sign and prove identity.\n"
        "NKEYs are sensitive and should be treated as secrets.\n\n"
        "-----BEGIN USER NKEY SEED-----\n"
        f"{user_seed.decode('ascii')}\n"
        "------END USER NKEY SEED------\n\n"
        "*************************************************************\n"
    )


@dataclass(frozen=True)
class OperatorSetup:
    """Everything a test needs to run nats-server in operator mode and connect to it."""

    server_config: str
    creds_text: str
    user_seed: bytes
    user_jwt: str
    account_public_key: str

    def write_creds(self, path: str | os.PathLike[str]) -> Path:
        """Write :attr:`creds_text` to ``path`` (mode 0600) and return it as a Path."""
        p = Path(path)
        p.write_text(self.creds_text)
        p.chmod(0o600)
        return p


def make_operator_setup(*, user_name: str = "alice") -> OperatorSetup:
    """Build operator + SYS account + APP account + user, all freshly generated."""
    operator = _new_keypair(nkeys.PREFIX_BYTE_OPERATOR)
    sys_account = _new_keypair(nkeys.PREFIX_BYTE_ACCOUNT)
    app_account = _new_keypair(nkeys.PREFIX_BYTE_ACCOUNT)
    user = _new_keypair(nkeys.PREFIX_BYTE_USER)
    sys_pub, app_pub = _public(sys_account), _public(app_account)

    operator_jwt = _encode_jwt(
        operator,
        _public(operator),
        "natsbook-test-operator",
        {"system_account": sys_pub, "type": "operator", "version": 2},
    )
    sys_jwt = _account_jwt(operator, sys_account, "SYS")
    app_jwt = _account_jwt(operator, app_account, "APP")
    user_jwt = _user_jwt(app_account, user, user_name)
    user_seed = bytes(user.seed)

    server_config = (
        f"operator: {operator_jwt}\n"
        f"system_account: {sys_pub}\n"
        "resolver: MEMORY\n"
        "resolver_preload: {\n"
        f"  {sys_pub}: {sys_jwt}\n"
        f"  {app_pub}: {app_jwt}\n"
        "}\n"
    )
    return OperatorSetup(
        server_config=server_config,
        creds_text=format_creds(user_jwt, user_seed),
        user_seed=user_seed,
        user_jwt=user_jwt,
        account_public_key=app_pub,
    )


def make_bad_creds_text() -> str:
    """Well-formed creds for a user whose account no server operator has signed."""
    rogue_account = _new_keypair(nkeys.PREFIX_BYTE_ACCOUNT)
    user = _new_keypair(nkeys.PREFIX_BYTE_USER)
    return format_creds(_user_jwt(rogue_account, user, "mallory"), bytes(user.seed))


def make_nkey_user() -> tuple[bytes, str]:
    """Return ``(seed, public_key)`` for plain NKey auth.

    Server side: ``authorization { users = [ { nkey: <public_key> } ] }``;
    client side: ``nats.connect(url, nkeys_seed_str=seed.decode())`` or a seed file.
    """
    user = _new_keypair(nkeys.PREFIX_BYTE_USER)
    return bytes(user.seed), _public(user)
