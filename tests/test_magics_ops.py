"""%nats_services and %nats_consumers against the real server, through the IPython shell."""

from __future__ import annotations

import uuid

import pandas as pd
import pytest
from IPython.core.error import UsageError

import natsbook
from natsbook import jetstream as js
from tests.conftest import TestingShell


def test_nats_services(nats: TestingShell, server: natsbook.LocalServer, subject: str) -> None:
    name = f"svc_{uuid.uuid4().hex[:8]}"
    with natsbook.connect(server.url) as c:
        svc = c.add_service(name, "1.0.0").endpoint("hi", lambda m: b"hi", subject=f"{subject}.hi")
        c.request(f"{subject}.hi", b"")
        frame = nats.run_cell(f"%nats_services {name} -o s").result
        assert list(frame["endpoint"]) == ["hi"] and frame["requests"].iloc[0] == 1
        assert nats.user_ns["s"] is frame
        every = nats.run_cell("%nats_services --timeout 0.5").result
        assert name in set(every["name"])
        with pytest.raises(UsageError, match="bad service name"):
            nats.run_cell("%nats_services a.b")
        with pytest.raises(UsageError, match="--timeout"):
            nats.run_cell("%nats_services --timeout -1")
        svc.stop()
    assert nats.run_cell(f"%nats_services {name}").result.empty


def test_nats_consumers(nats: TestingShell, server: natsbook.LocalServer, subject: str) -> None:
    stream = f"M{uuid.uuid4().hex[:8]}".upper()
    with natsbook.connect(server.url) as c:
        js.add_stream(c, stream, [f"{subject}.>"])
        for i in range(5):
            c.js_publish(f"{subject}.x", {"i": i})
        c.add_consumer(stream, "work")
        frame = nats.run_cell(f"%nats_consumers {stream}").result
        assert list(frame["name"]) == ["work"] and frame["pending"].iloc[0] == 5
        info = nats.run_cell(f"%nats_consumers {stream} work -o ci").result
        assert isinstance(info, dict) and info["num_pending"] == 5 and nats.user_ns["ci"] is info
        lag = nats.run_cell(f"%nats_consumers {stream} --watch 0.2 --every 0.1").result
        assert isinstance(lag, pd.DataFrame) and len(lag) == 3 and (lag["pending"] == 5).all()
        with pytest.raises(natsbook.errors.NotFoundError, match="did you mean 'work'"):
            nats.run_cell(f"%nats_consumers {stream} wrok")
        with pytest.raises(natsbook.errors.NotFoundError, match="not found"):
            nats.run_cell(f"%nats_consumers {stream}X")
        with pytest.raises(UsageError, match="--watch"):
            nats.run_cell(f"%nats_consumers {stream} --watch soon")
        js.delete_stream(c, stream)


def test_ops_magics_need_a_connection(ip: TestingShell) -> None:
    with pytest.raises(UsageError, match="nats_connect"):
        ip.run_cell("%nats_services")
    with pytest.raises(UsageError, match="nats_connect"):
        ip.run_cell("%nats_consumers S")
