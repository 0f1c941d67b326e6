"""A three-node JetStream cluster with a system account (SYS) and an app account (APP),
started race-free like tests/faults' cluster; shared by the system-monitoring and the
message-trace / advisory tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import natsbook
from natsbook.errors import ServerStartError
from tests.faults.helpers import Cluster, free_port, wait_for

NAMES = ["n1", "n2", "n3"]
ACCOUNTS = ("accounts {\n  SYS { users = [{user: sys, password: sys}] }\n"
            "  APP { jetstream: enabled, users = [{user: app, password: app}] }\n}\n"
            "system_account: SYS\n")


class SysCluster(Cluster):
    """Cluster's three nodes with a system account SYS and an app account APP (JetStream)."""

    def _server(self, i: int, seed: int | None) -> natsbook.LocalServer:
        cluster = self._config(i, seed).split("\n", 1)[1]
        if seed is None:
            # A JetStream cluster's seed needs a configured route: its own (nats-server skips
            # a route to itself), on a port picked here; start() retries if it was taken.
            own = free_port()
            cluster = (f"cluster {{\n  name: c1\n  listen: 127.0.0.1:{own}\n"
                       f"  routes: [ nats-route://127.0.0.1:{own} ]\n}}\n")
        config = (f"server_name: n{i + 1}\n{ACCOUNTS}"
                  "leafnodes { listen: 127.0.0.1:-1 }\n" + cluster)
        return natsbook.LocalServer(jetstream=True, config=config)

    def start(self) -> SysCluster:
        for attempt in range(3):
            try:
                super().start()
                return self
            except ServerStartError:
                self.close()
                self.nodes = []
                if attempt == 2:
                    raise
        return self


def jetstream_ready(url: str) -> bool:
    """The cluster's JetStream has a meta leader: the account info request is answered."""
    with natsbook.connect(url, user="app", password="app") as app:
        try:
            app.request("$JS.API.INFO", b"", timeout=1.0)
        except natsbook.NatsbookError:
            return False
    return True


@contextmanager
def sys_cluster() -> Iterator[SysCluster]:
    """Start the cluster, wait for its JetStream meta leader, close every node at the end."""
    c = SysCluster()
    try:
        c.start()
        wait_for(lambda: jetstream_ready(c.nodes[0].url), timeout=30, interval=0.2)
        yield c
    finally:
        c.close()
