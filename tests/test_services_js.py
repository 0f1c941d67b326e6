"""NATS services interop with nats.js's service library (@nats-io/services), whose client has
a real discovery API: it lists a natsbook service, and natsbook lists a nats.js service.

Needs node and ``npm install --prefix tests/js`` (packages pinned in tests/js/package.json);
skipped with the reason otherwise."""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from pathlib import Path

import pandas as pd
import pytest

from natsbook import Connection, LocalServer
from natsbook.errors import ServiceError

JS = Path(__file__).parent / "js"
NODE = shutil.which("node")
pytestmark = [
    pytest.mark.skipif(NODE is None, reason="node is not installed"),
    pytest.mark.skipif(not (JS / "node_modules" / "@nats-io" / "services").is_dir(),
                       reason="nats.js is not installed: npm install --prefix tests/js"),
]


def test_nats_js_discovers_a_natsbook_service(conn: Connection, server: LocalServer,
                                              subject: str) -> None:
    name = f"svc_{uuid.uuid4().hex[:8]}"
    svc = conn.add_service(name, "1.4.0", description="notebook", metadata={"k": "v"})
    svc.endpoint("echo", lambda m: m.data, subject=f"{subject}.echo")
    svc.endpoint("fail", lambda m: 1 / 0, subject=f"{subject}.fail")
    conn.request(f"{subject}.echo", b"a")
    conn.request(f"{subject}.echo", b"b")
    with pytest.raises(ServiceError):
        conn.request(f"{subject}.fail", b"")
    out = subprocess.run([str(NODE), str(JS / "micro.js"), "discover", server.url, name],
                         capture_output=True, text=True, timeout=60, check=True)
    found = json.loads(out.stdout)
    assert [p["id"] for p in found["ping"]] == [svc.id]
    assert found["ping"][0]["type"] == "io.nats.micro.v1.ping_response"
    (info,) = found["info"]
    assert (info["type"], info["version"], info["description"], info["metadata"]) == (
        "io.nats.micro.v1.info_response", "1.4.0", "notebook", {"k": "v"})
    assert [(e["name"], e["subject"], e["queue_group"]) for e in info["endpoints"]] == [
        ("echo", f"{subject}.echo", "q"), ("fail", f"{subject}.fail", "q")]
    (stats,) = found["stats"]
    assert stats["type"] == "io.nats.micro.v1.stats_response"
    assert pd.Timestamp(stats["started"]) == pd.Timestamp(svc.started)
    eps = {e["name"]: e for e in stats["endpoints"]}
    assert (eps["echo"]["num_requests"], eps["echo"]["num_errors"]) == (2, 0)
    assert (eps["fail"]["num_requests"], eps["fail"]["num_errors"]) == (1, 1)
    assert eps["fail"]["last_error"].startswith("500:ZeroDivisionError")
    assert eps["echo"]["average_processing_time"] == eps["echo"]["processing_time"] // 2
    svc.stop()


def test_natsbook_discovers_a_nats_js_service(conn: Connection, server: LocalServer,
                                              subject: str) -> None:
    name = f"svc_{uuid.uuid4().hex[:8]}"
    proc = subprocess.Popen([str(NODE), str(JS / "micro.js"), "serve", server.url, name,
                             subject], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdin is not None
        line = proc.stdout.readline()
        assert line.startswith("ready "), proc.stderr.read() if proc.stderr else line
        sid = line.split()[1]
        assert conn.request(f"{subject}.upper", b"abc").data == b"ABC"
        with pytest.raises(ServiceError) as err:
            conn.request(f"{subject}.fail", b"")
        assert (err.value.code, err.value.description) == (409, "conflict")
        frame = conn.services(name).set_index("endpoint")
        assert list(frame.index) == ["fail", "upper"] and set(frame["id"]) == {sid}
        assert set(frame["version"]) == {"2.0.0"} and set(frame["description"]) == {"nats.js"}
        assert frame.loc["upper", "metadata"] == {"lang": "js"}
        assert frame.loc["upper", "subject"] == f"{subject}.upper"
        assert (frame.loc["upper", "requests"], frame.loc["upper", "errors"]) == (1, 0)
        assert (frame.loc["fail", "requests"], frame.loc["fail", "errors"]) == (1, 1)
        assert "conflict" in frame.loc["fail", "last_error"]
        assert frame["started"].notna().all()
        assert isinstance(frame.loc["upper", "average_processing_time"], pd.Timedelta)
    finally:
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
