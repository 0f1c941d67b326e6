"""The server's INFO, checked field by field before anything uses it.

nats.go decodes INFO into a typed struct: a field of the wrong JSON type fails the decode. The
same here, for every field natsbook reads or shows: a bad one is a ProtocolError naming it
(``connect_urls: 5`` must not reach the server pool as a TypeError, nor ``"abc"`` as the
servers ``a``, ``b`` and ``c``). Fields natsbook does not know are left as they are.
"""

from __future__ import annotations

from typing import Any

from ..errors import ProtocolError

__all__ = ["check_info", "info_error"]

#: The INFO fields natsbook reads or shows and the JSON type each must have (nats-server's Info
#: struct, as nats.go's ServerInfo declares them).
_INFO_STR = ("server_id", "server_name", "version", "go", "host", "git_commit", "nonce",
             "cluster", "domain", "client_ip", "xkey")
_INFO_BOOL = ("headers", "auth_required", "tls_required", "tls_available", "tls_verify", "ldm",
              "jetstream", "acc_is_sys", "lnoc", "lnocu")
_INFO_INT = ("proto", "port", "max_payload", "api_lvl")
_INFO_UINT = ("client_id",)
_INFO_STR_LIST = ("connect_urls", "ws_connect_urls")

_KNOWN: dict[str, str] = {
    **dict.fromkeys(_INFO_STR, "a string"),
    **dict.fromkeys(_INFO_BOOL, "true or false"),
    **dict.fromkeys(_INFO_INT, "an integer"),
    **dict.fromkeys(_INFO_UINT, "a non-negative integer"),
    **dict.fromkeys(_INFO_STR_LIST, "a list of strings"),
}


def _fits(want: str, value: object) -> bool:
    if want == "a string":
        return type(value) is str
    if want == "true or false":
        return type(value) is bool  # 1 is not true: nats.go refuses a number for a bool
    if want == "an integer":
        return type(value) is int  # True is not 1, 1.0 is not 1 (as nats.go)
    if want == "a non-negative integer":
        return type(value) is int and value >= 0
    return type(value) is list and all(type(v) is str for v in value)


def check_info(info: dict[str, Any]) -> dict[str, Any]:
    """Check the JSON type of every INFO field natsbook knows (strings, booleans, integers,
    lists of strings); unknown fields are left as they are. A known field that is ``null`` is
    dropped, as if absent (nats.go leaves such a field at its zero value). Returns `info`.

    Raises:
        ProtocolError: naming the first field of the wrong type, and what it holds.
    """
    for key in [k for k in _KNOWN if k in info and info[k] is None]:
        del info[key]
    for key, value in info.items():
        want = _KNOWN.get(key)
        if want is not None and not _fits(want, value):
            shown = repr(value)
            if len(shown) > 40:
                shown = shown[:37] + "..."
            raise ProtocolError(f"INFO field {key!r} must be {want}, got "
                                f"{type(value).__name__} {shown}")
    return info


def info_error(info: dict[str, Any]) -> str | None:
    """check_info() as a value: None when `info` is good, else what is wrong with it."""
    try:
        check_info(info)
    except ProtocolError as exc:
        return str(exc).removeprefix("natsbook: ")
    return None
