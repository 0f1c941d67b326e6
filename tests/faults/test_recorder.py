"""``natsbook record`` under failures, with real servers and recorder subprocesses: two
recorders sharing a durable and one SIGKILLed mid-stream; a three-node JetStream cluster with
an R3 stream and one server stopped while recording. Either way every stream sequence is read
exactly once."""

from __future__ import annotations

import json
import signal
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest

import natsbook
from natsbook import jetstream as js
from tests.test_record import Recorders, ack_pending, parts, record_cmd, recorders, wait_for

__all__ = ["recorders"]  # the fixture, imported for this module's tests

#: Parts held open about a second (so a kill finds one open), redelivery after 2 s.
FAST = ("--ack-wait", "2", "--part-seconds", "1", "--part-rows", "2000", "--progress", "1")


class Feeder(threading.Thread):
    """Publishes `count` numbered messages at a steady pace (acked JetStream publishes,
    retried with the same Nats-Msg-Id when a server goes away, so each is stored once)."""

    def __init__(self, url: str, subject: str, count: int, rate: float) -> None:
        super().__init__(daemon=True)
        self.conn = natsbook.connect(url, reconnect_wait=0.05)
        self.subject, self.count, self.rate = subject, count, rate
        self.sent = 0
        self.error: BaseException | None = None
        self.halt = threading.Event()

    def run(self) -> None:
        start = time.monotonic()
        try:
            for i in range(self.count):
                if self.halt.is_set():
                    return
                for attempt in range(100):
                    try:
                        js.js_publish(self.conn, f"{self.subject}.m", {"i": i},
                                      msg_id=f"m{i}", timeout=1.0)
                        break
                    except natsbook.NatsbookError:
                        if attempt == 99:
                            raise
                        time.sleep(0.1)
                self.sent += 1
                ahead = start + (i + 1) / self.rate - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)
        except BaseException as exc:  # reported by the test
            self.error = exc

    def finish(self, timeout: float = 60.0) -> None:
        self.join(timeout)
        self.halt.set()
        self.conn.close()
        assert not self.is_alive(), "the feeder did not finish"
        assert self.error is None, self.error


def writers(out: Path) -> set[str]:
    return {p.name.rsplit("-", 1)[1] for p in parts(out)}


def check_exactly_once(conn: natsbook.Connection, stream: str, out: Path) -> int:
    state = js.stream_info(conn, stream)["state"]
    frame = natsbook.read_capture(out)
    seqs = frame["stream_seq"].tolist()
    assert seqs == list(range(1, state["last_seq"] + 1)), "every sequence exactly once"
    assert sorted(frame["i"]) == list(range(state["messages"]))
    raw = sum(pq.read_metadata(p).num_rows for p in parts(out))
    return raw - len(seqs)  # rows written twice (crash leftovers), removed when reading


@pytest.mark.slow
def test_two_recorders_one_sigkilled(server: natsbook.LocalServer, subject: str,
                                     tmp_path: Path, recorders: Recorders) -> None:
    out = tmp_path / "ds"
    conn = natsbook.connect(server.url)
    feeder = None
    try:
        js.add_stream(conn, subject, [f"{subject}.>"])
        # `a` writes a part every 3 s (age), so whenever it is killed it holds an open part.
        a = recorders.start(record_cmd(server.url, subject, out, "--ack-wait", "2",
                                       "--part-seconds", "3", "--part-rows", "100000"))
        b = recorders.start(record_cmd(server.url, subject, out, *FAST))
        feeder = Feeder(server.url, subject, 8000, rate=1000)
        feeder.start()
        wait_for(lambda: len(writers(out)) == 2, timeout=30)  # both are writing parts
        mark = feeder.sent
        wait_for(lambda: feeder.sent >= mark + 1000, timeout=30)  # `a` took more since
        a.send_signal(signal.SIGKILL)  # mid-stream, mid-part: no flush, no ack
        a.communicate(timeout=20)
        feeder.finish()
        # The killed recorder's unacked messages come back after ack_wait, to the survivor.
        wait_for(lambda: ack_pending(conn, subject, "natsbook-record") == 0
                 and js.consumer_info(conn, subject, "natsbook-record")["num_pending"] == 0,
                 timeout=60)
        b.send_signal(signal.SIGTERM)
        _, err = b.communicate(timeout=30)
        assert b.returncode == 0, err
        check_exactly_once(conn, subject, out)
    finally:
        if feeder is not None and feeder.is_alive():
            feeder.halt.set()
        js.delete_stream(conn, subject)
        conn.close()


# ---------------------------------------------------------------- a JetStream cluster
class JSCluster:
    """Three JetStream nodes on loopback. A JetStream cluster's seed needs a configured route
    (nats-server skips the one to itself), so its cluster port is picked here (retried when
    taken meanwhile); the others listen on ports of their own choice and route to it."""

    def __init__(self) -> None:
        self.nodes: list[natsbook.LocalServer] = []

    @staticmethod
    def _node(i: int, listen: str, seed: int) -> natsbook.LocalServer:
        return natsbook.LocalServer(jetstream=True, config=(
            f"server_name: r{i + 1}\n"
            f"cluster {{\n  name: rc\n  listen: {listen}\n"
            f"  routes: [ nats-route://127.0.0.1:{seed} ]\n}}\n"))

    def start(self) -> JSCluster:
        for attempt in range(3):
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = int(s.getsockname()[1])
            self.nodes = [self._node(0, f"127.0.0.1:{port}", port)]
            try:
                self.nodes[0].start()
                break
            except natsbook.errors.ServerStartError:
                self.close()
                if attempt == 2:
                    raise
        self.nodes += [self._node(i, "127.0.0.1:-1", port) for i in (1, 2)]
        for n in self.nodes[1:]:
            n.start()
        wait_for(self._ready, timeout=60)
        return self

    def _ready(self) -> bool:
        try:
            with natsbook.connect(self.nodes[0].url, connect_timeout=1.0) as c:
                info = c.request("$JS.API.INFO", b"", timeout=1.0)
                return b'"error"' not in info.data
        except natsbook.NatsbookError:
            return False

    def close(self) -> None:
        for n in self.nodes:
            n.kill()
            n.close()


@pytest.fixture
def jscluster() -> Iterator[JSCluster]:
    c = JSCluster()
    try:
        yield c.start()
    finally:
        c.close()


@pytest.mark.slow
def test_r3_stream_survives_a_stopped_server(jscluster: JSCluster, tmp_path: Path,
                                             recorders: Recorders) -> None:
    n1, n2, n3 = jscluster.nodes
    out = tmp_path / "ds"
    stream = "REC3"
    conn = natsbook.connect(n3.url, reconnect_wait=0.05)
    feeder = None
    try:
        wait_for(lambda: _try_add(conn, stream), timeout=30)
        rec = recorders.start(record_cmd(f"{n1.url},{n2.url}", stream, out, *FAST))
        feeder = Feeder(n3.url, "rec3", 3000, rate=500)
        feeder.start()
        wait_for(lambda: parts(out), timeout=30)
        wait_for(lambda: feeder.sent >= 1000, timeout=30)
        # Stop the recorder's server (the feeder's is n3): the R3 stream keeps 2 of 3.
        host = wait_for(lambda: next((n for n in (n1, n2) if RECORDER in clients(n)), None))
        host.stop()
        feeder.finish(timeout=120)
        wait_for(lambda: ack_pending(conn, stream, "natsbook-record") == 0
                 and js.consumer_info(conn, stream, "natsbook-record")["num_pending"] == 0,
                 timeout=90)
        rec.send_signal(signal.SIGTERM)
        _, err = rec.communicate(timeout=30)
        assert rec.returncode == 0, err
        assert js.stream_info(conn, stream)["state"]["messages"] == 3000
        check_exactly_once(conn, stream, out)
    finally:
        if feeder is not None and feeder.is_alive():
            feeder.halt.set()
        conn.close()


RECORDER = "natsbook-record-natsbook-record"


def clients(node: natsbook.LocalServer) -> list[str]:
    """Names of the clients connected to `node` (its monitoring /connz)."""
    assert node.monitor_url is not None
    with urllib.request.urlopen(node.monitor_url + "/connz", timeout=5) as resp:
        return [c.get("name", "") for c in json.loads(resp.read()).get("connections") or []]


def _try_add(conn: natsbook.Connection, stream: str) -> bool:
    try:
        js.add_stream(conn, stream, ["rec3.>"], num_replicas=3)
    except natsbook.NatsbookError:
        return False
    return True
