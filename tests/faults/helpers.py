"""Helpers for the fault-injection suite: polling, monitoring, clusters, steady publishers."""

from __future__ import annotations

import json
import re
import socket
import threading
import time
import urllib.request
from collections.abc import Callable
from typing import Any

import natsbook
from natsbook import LocalServer
from natsbook.errors import NotConnectedError


def free_port() -> int:
    """A free loopback TCP port (bound then released; good enough for tests)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(pred: Callable[[], Any], timeout: float = 5.0, interval: float = 0.01) -> Any:
    """Poll `pred` until it returns something truthy; fail the test after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        got = pred()
        if got:
            return got
        if time.monotonic() >= deadline:
            raise AssertionError(f"condition not met within {timeout:g}s: {pred}")
        time.sleep(interval)


def monitor(srv: LocalServer, path: str, timeout: float = 5.0) -> Any:
    """GET a monitoring endpoint as JSON."""
    assert srv.monitor_url is not None
    with urllib.request.urlopen(srv.monitor_url + path, timeout=timeout) as resp:
        return json.loads(resp.read())


_ROUTE_RE = re.compile(r"Listening for route connections on [^\s]*:(\d+)")


def route_port(node: LocalServer) -> int:
    """The route port a started node chose (it listens on port -1 and logs the port; the
    route listener may come up just after "Server is ready")."""

    def find() -> int | None:
        for line in list(node.log):
            if m := _ROUTE_RE.search(line):
                return int(m.group(1))
        return None

    deadline = time.monotonic() + 10
    while (port := find()) is None:
        if time.monotonic() >= deadline:
            raise AssertionError("no route listener in the log:\n"
                                 + "\n".join(list(node.log)[-10:]))
        time.sleep(0.01)
    return port


class Cluster:
    """Three nats-server nodes on loopback, routes between them, monitoring on each.

    Race-free ports: every node picks its own client, monitoring and route port (-1) and
    reports it in its log; the first node is started first and the others route to it (the
    full mesh forms by gossip), so no port is ever chosen by the test and released.
    """

    def __init__(self, size: int = 3) -> None:
        self.size = size
        self.nodes: list[LocalServer] = []

    @staticmethod
    def _config(i: int, seed: int | None) -> str:
        routes = f"  routes: [ nats-route://127.0.0.1:{seed} ]\n" if seed else ""
        return (f"server_name: n{i + 1}\n"
                f"cluster {{\n  name: c1\n  listen: 127.0.0.1:-1\n{routes}}}\n")

    def _server(self, i: int, seed: int | None) -> LocalServer:
        """Node `i` (not started), routing to the seed node's route port (None: the seed)."""
        return LocalServer(jetstream=False, config=self._config(i, seed), websocket=True)

    def start(self) -> Cluster:
        first = self._server(0, None)
        self.nodes.append(first)
        first.start()
        seed = route_port(first)
        rest = [self._server(i, seed) for i in range(1, self.size)]
        self.nodes += rest
        threads = [threading.Thread(target=n.start) for n in rest]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        for n in self.nodes:
            assert n.running, "\n".join(list(n.log)[-10:])
        want = len(self.nodes) - 1
        wait_for(lambda: all(self.peers(n) >= want for n in self.nodes), timeout=15)
        return self

    @staticmethod
    def peers(node: LocalServer) -> int:
        try:
            routez = monitor(node, "/routez", timeout=1.0)
        except OSError:
            return 0
        return len({r.get("remote_name") for r in routez.get("routes") or []})

    def node_for(self, url: str | None) -> LocalServer:
        for n in self.nodes:
            if n.url == url:
                return n
        raise AssertionError(f"{url} is not a node of the cluster")

    def close(self) -> None:
        for n in self.nodes:
            n.kill()  # a lame duck would otherwise take its grace period to stop
            n.close()


class Publisher(threading.Thread):
    """Publishes numbered messages (``{"n": i}``) at a steady rate from its own connection.

    Publishes refused with NotConnectedError are recorded in ``refused``; every other
    outcome is an accepted publish in ``accepted``.
    """

    def __init__(self, url: str | list[str], subject: str, rate: float = 200.0) -> None:
        super().__init__(daemon=True, name="faults-publisher")
        self.conn = natsbook.connect(url, name="faults-publisher", reconnect_wait=0.02)
        self.subject = subject
        self.period = 1.0 / rate
        self.stop_event = threading.Event()
        self.accepted: list[int] = []
        self.refused: list[int] = []
        self.other: list[BaseException] = []
        #: wall-clock time of each accepted publish, by number
        self.sent_at: dict[int, float] = {}

    def run(self) -> None:
        i = 0
        next_t = time.monotonic()
        while not self.stop_event.is_set():
            try:
                self.conn.publish(self.subject, {"n": i})
                self.sent_at[i] = time.time()
                self.accepted.append(i)
            except NotConnectedError:
                self.refused.append(i)
            except Exception as exc:  # recorded; the test asserts there is none
                self.other.append(exc)
            i += 1
            next_t += self.period
            delay = next_t - time.monotonic()
            if delay > 0:
                self.stop_event.wait(delay)

    def finish(self) -> None:
        self.stop_event.set()
        self.join(10)
        assert not self.is_alive()
        self.conn.flush(10)
        self.conn.close()

    def abort(self) -> None:
        """Teardown after a failure: stop and close without asserting anything."""
        self.stop_event.set()
        self.join(5)
        self.conn.close()
