"""IPython magics: the NATS CLI's daily verbs as notebook lines (``%load_ext natsbook``).

::

    %nats_connect [URL ...] [--token T] [--user U --password P] [--creds F] [--nkey F]
                  [--tls-ca F] [--tls-cert F] [--tls-key F] [--name N] [--context [NAME]]
    %nats_pub SUBJECT [PAYLOAD] [--reply R] [-H KEY:VALUE ...] [--count N]   (%%nats_pub too)
    %nats_sub SUBJECT [--queue Q] [--max N] [--decode FORMAT] [-o NAME]
    %nats_req SUBJECT [PAYLOAD] [--timeout S] [-H KEY:VALUE ...]           (%%nats_req too)
    %nats_unsub [SUBJECT | --all]      %nats_subs      %nats_info      %nats_close
    %nats_msgs [PATTERN] [--last N] [--decode json|text|bytes|auto|msgpack|cbor|NAME] [-o NAME]
    %nats_streams      %nats_stream NAME [--subject S] [--since T] [--until T] [--last N]
                       [-o NAME]   (T: ISO time, epoch seconds >= 1e9, or 30s/10m/2h ago)
    %nats_kv BUCKET [KEY] [-o NAME]
    %nats_server varz|connz|closed|subsz|jsz|healthz|routez|gatewayz|leafz|accountz [--url U]
                       (a system-account connection: every server of the cluster)
    %nats_services [NAME] [--timeout S] [-o NAME]         (NATS services, one row per endpoint)
    %nats_consumers STREAM [CONSUMER] [--watch S [--every S]] [-o NAME]
    %nats_trace SUBJECT [PAYLOAD] [-H K:V] [--no-deliver] [-t S] [-o NAME]  (message path)
    %nats_check [STREAM ...] [--pending W,F] [--ack-pending W,F] [--lag W,F] [-o NAME]
    %nats_obj BUCKET [NAME] [--put FILE | --save FILE | --bytes | --delete] [--create] [-o V]
    %nats_panel        (the dashboard of publish/subscribe/request/explorer panels)
    %%nats_sql [-o NAME]                    (the cell: DuckDB SQL over the captures)
    %%nats_live SUBJECT_OR_CAPTURE [--every 1s] [--sql] [-o NAME]
                       (the cell: SQL, or Python over `df`; re-rendered as messages arrive)

Every magic goes through the public API (:func:`natsbook.connect` and ``Connection`` methods).
Options live on the ``NatsMagics`` class: ``%config NatsMagics.timeout = 2``. A wrong line
(a bad subject, flag or payload) is a ``UsageError``; a failure at run time (no responders, a
timeout, a refused connection) is the natsbook error itself, shown as one line with its hint
(no traceback wall). Secrets given to ``%nats_connect``
are never printed, and are replaced by ``***`` in this session's input history.

The verbs live in families, one module each: ``_magics_connect`` (connection and
contexts), ``_magics_messaging`` (pub/sub/req/msgs), ``_magics_data`` (streams, KV,
monitoring, panels), ``_magics_live`` (SQL, live views), ``_magics_ops`` (services,
consumers) and ``_magics_objects`` (object store), over ``_magics_base`` (settings, shared
state and helpers).
"""

from __future__ import annotations

import contextlib
from typing import Any

from IPython.core.magic import magics_class

from ._magic_support import install_error_display, uninstall_error_display
from ._magics_connect import ConnectMagics
from ._magics_data import DataMagics
from ._magics_live import LiveMagics
from ._magics_messaging import MessagingMagics
from ._magics_objects import ObjectMagics
from ._magics_ops import OpsMagics

__all__ = ["NatsMagics", "load_ipython_extension", "unload_ipython_extension"]

_FAMILIES = (ConnectMagics, MessagingMagics, DataMagics, LiveMagics, OpsMagics, ObjectMagics)


@magics_class
class NatsMagics(ConnectMagics, MessagingMagics, DataMagics, LiveMagics, OpsMagics,
                 ObjectMagics):
    """NATS from notebook lines. Settings: ``%config NatsMagics`` lists them."""

    def close(self) -> None:
        """Close the connection and the embedded server (extension unload)."""
        self._stop_all()
        server, self.server = self.server, None
        if server is not None:
            server.close()
        if self._limit_restore is not None:
            self._restore_display()


# Each family registered its own verbs (@magics_class); NatsMagics answers to all of them.
NatsMagics.magics = {kind: {name: meth for family in _FAMILIES
                            for name, meth in family.magics[kind].items()}
                     for kind in ("line", "cell")}


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext natsbook``: register the magics (``%config NatsMagics`` for options)."""
    from ._display import install

    install(ipython)
    install_error_display(ipython)
    registry = ipython.magics_manager.registry
    if "NatsMagics" in registry:
        return
    ipython.register_magics(NatsMagics(ipython))


def unload_ipython_extension(ipython: Any) -> None:
    """``%unload_ext natsbook``: close the connection and any embedded server."""
    magics = ipython.magics_manager.registry.pop("NatsMagics", None)
    uninstall_error_display(ipython)
    if magics is not None:
        magics.close()
        for kind in ("line", "cell"):
            table = ipython.magics_manager.magics[kind]
            for name in [n for n in table if n.startswith("nats_")]:
                del table[name]
        with contextlib.suppress(ValueError):
            ipython.configurables.remove(magics)
