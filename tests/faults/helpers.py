"""Helpers for the fault-injection suite: polling, monitoring, clusters, steady publishers."""

from __future__ import annotations

import json
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


class Cluster:
    """Three nats-server nodes on loopback, routes between them, monitoring on each."""

    def __init__(self, size: int = 3) -> None:
        self.route_ports = [free_port() for _ in range(size)]
        routes = ", ".join(f"nats-route://127.0.0.1:{p}" for p in self.route_ports)
        self.nodes: list[LocalServer] = []
        for i, rp in enumerate(self.route_ports):
            config = (
                f"server_name: n{i + 1}\n"
                f"cluster {{\n  name: c1\n  listen: 127.0.0.1:{rp}\n  routes: [ {routes} ]\n}}\n"
            )
            self.nodes.append(LocalServer(jetstream=False, config=config, websocket=True))

    def start(self) -> Cluster:
        threads = [threading.Thread(target=n.start) for n in self.nodes]
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
