"""NATS services (the micro protocol) against a real server: natsbook's own services answer the
service API as the official clients do, nats-py sees them, and natsbook sees nats-py's."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import nats
import pandas as pd
import pytest
from nats.micro import add_service as py_add_service
from nats.micro.request import Request as PyRequest
from nats.micro.request import ServiceError as PyServiceError
from nats.micro.service import ServiceInfo, ServicePing, ServiceStats

import natsbook
from natsbook import Connection, LocalServer, Msg
from natsbook.errors import BadInputError, BadSubjectError, NoRespondersError, ServiceError


@pytest.fixture
def name() -> str:
    """A service name unique to the test (other tests' services share the server)."""
    return f"svc_{uuid.uuid4().hex[:10]}"


def _fail(msg: Msg) -> None:
    if msg.data == b"teapot":
        raise ServiceError(msg.subject, 418, "I'm a teapot")
    raise ValueError(f"cannot handle {msg.data!r}")


def test_counters_match_what_the_handler_did(conn: Connection, name: str, subject: str) -> None:
    svc = conn.add_service(name, "1.2.3", description="demo", metadata={"team": "ops"})
    svc.endpoint("upper", lambda m: m.data.upper(), subject=f"{subject}.upper")
    svc.endpoint("fail", _fail, subject=f"{subject}.fail", metadata={"kind": "broken"})
    for i in range(5):
        assert conn.request(f"{subject}.upper", f"x{i}").data == f"X{i}".encode()
    with pytest.raises(ServiceError) as err:
        conn.request(f"{subject}.fail", b"boom")
    assert err.value.code == 500 and err.value.description == "ValueError: cannot handle b'boom'"
    with pytest.raises(ServiceError) as err:
        conn.request(f"{subject}.fail", b"teapot")
    assert err.value.code == 418 and err.value.description == "I'm a teapot"
    stats = svc.stats().set_index("endpoint")
    assert stats.loc["upper", "requests"] == 5 and stats.loc["upper", "errors"] == 0
    assert stats.loc["fail", "requests"] == 2 and stats.loc["fail", "errors"] == 2
    assert stats.loc["fail", "last_error"] == "418:I'm a teapot"
    assert stats.loc["upper", "last_error"] == ""
    for ep in ("upper", "fail"):
        total, avg = stats.loc[ep, "processing_time"], stats.loc[ep, "average_processing_time"]
        assert isinstance(avg, pd.Timedelta) and avg > pd.Timedelta(0)
        assert avg.value == total.value // stats.loc[ep, "requests"]  # ns, integer division
    assert stats.loc["fail", "endpoint_metadata"] == {"kind": "broken"}
    # what discovery sees is what the instance counted
    found = conn.services(name).set_index("endpoint")
    assert list(found.index) == ["fail", "upper"]
    assert (found["id"] == svc.id).all() and (found["version"] == "1.2.3").all()
    assert (found["description"] == "demo").all() and (found["queue_group"] == "q").all()
    assert found.loc["upper", "subject"] == f"{subject}.upper"
    assert found.loc["upper", "requests"] == 5 and found.loc["fail", "errors"] == 2
    assert found.loc["fail", "metadata"] == {"team": "ops"}
    assert found["started"].iloc[0] == pd.Timestamp(svc.started)
    svc.reset()
    after = conn.services(name).set_index("endpoint")
    assert (after["requests"] == 0).all() and (after["errors"] == 0).all()
    assert (after["last_error"] == "").all() and (after["started"] > found["started"]).all()
    svc.stop()
    svc.stop()  # idempotent
    assert conn.services(name).empty
    with pytest.raises(NoRespondersError):
        conn.request(f"{subject}.upper", b"x", timeout=1)


def test_names_versions_and_endpoints_are_validated(conn: Connection, name: str) -> None:
    for bad in ("", "a b", "a.b", "x*", "é"):
        with pytest.raises(BadInputError, match="bad service name"):
            conn.add_service(bad, "1.0.0")
    for bad in ("1.0", "v1.0.0", "01.0.0", "1.0.0-", "1.0.0+", "latest"):
        with pytest.raises(BadInputError, match="semantic version"):
            conn.add_service(name, bad)
    with pytest.raises(BadInputError, match="metadata"):
        conn.add_service(name, "1.0.0", metadata={"n": 1})  # type: ignore[dict-item]
    with conn.add_service(name, "1.0.0-rc.1+build.5") as svc:
        svc.endpoint("a", lambda m: b"")
        with pytest.raises(BadInputError, match="already has an endpoint 'a'"):
            svc.endpoint("a", lambda m: b"")
        with pytest.raises(BadInputError, match="bad endpoint name"):
            svc.endpoint("a.b", lambda m: b"")
        with pytest.raises(BadSubjectError):
            svc.endpoint("b", lambda m: b"", subject="bad subject")
        assert svc.endpoints == ["a"]
    assert svc.stopped
    with pytest.raises(BadInputError, match="stopped"):
        svc.endpoint("c", lambda m: b"")


def test_queue_group_spreads_requests_over_instances(conn: Connection, server: LocalServer,
                                                     name: str, subject: str) -> None:
    with natsbook.connect(server.url) as other:
        a = conn.add_service(name, "1.0.0").endpoint("work", lambda m: b"a",
                                                     subject=f"{subject}.work")
        b = other.add_service(name, "1.0.0").endpoint("work", lambda m: b"b",
                                                      subject=f"{subject}.work")
        answers = [conn.request(f"{subject}.work", b"").data for _ in range(40)]
        found = conn.services(name)
        assert sorted(found["id"]) == sorted([a.id, b.id])
        by_id = found.set_index("id")["requests"]
        assert by_id[a.id] == answers.count(b"a") and by_id[b.id] == answers.count(b"b")
        assert by_id.sum() == 40
        a.stop()
        b.stop()


def test_empty_discovery_returns_at_once(conn: Connection) -> None:
    """Nobody listens on $SRV.INFO.<name>: the server's no-responders status ends the wait."""
    t0 = time.monotonic()
    frame = conn.services(f"none_{uuid.uuid4().hex[:8]}", timeout=5.0)
    assert time.monotonic() - t0 < 2.5
    assert frame.empty and list(frame.columns)[:5] == ["name", "id", "version", "description",
                                                       "endpoint"]
    with pytest.raises(BadInputError):
        conn.services("a.b")


def test_nats_py_sees_a_natsbook_service(conn: Connection, server: LocalServer, name: str,
                                         subject: str) -> None:
    """nats-py has no discovery client, so it asks the service API itself and parses each
    answer with its own micro schema classes (which require every field they know)."""
    svc = conn.add_service(name, "0.9.1", description="from a notebook", metadata={"k": "v"})
    svc.endpoint("echo", lambda m: m.data, subject=f"{subject}.echo", metadata={"e": "1"})
    svc.endpoint("fail", _fail, subject=f"{subject}.fail")

    async def main() -> dict:
        nc = await nats.connect(server.url)
        out: dict = {}
        for verb in ("PING", "INFO", "STATS"):
            for subj in (f"$SRV.{verb}", f"$SRV.{verb}.{name}", f"$SRV.{verb}.{name}.{svc.id}"):
                inbox = nc.new_inbox()
                sub = await nc.subscribe(inbox)
                await nc.publish(subj, b"", reply=inbox)
                mine = []
                deadline = time.monotonic() + 2
                while not mine and time.monotonic() < deadline:
                    try:
                        msg = await sub.next_msg(timeout=0.5)
                    except nats.errors.TimeoutError:
                        continue
                    body = json.loads(msg.data)
                    if body["id"] == svc.id:
                        mine.append(body)
                await sub.unsubscribe()
                out[subj] = mine
        out["echo"] = (await nc.request(f"{subject}.echo", b"hi", timeout=2)).data
        err = await nc.request(f"{subject}.fail", b"teapot", timeout=2)
        out["err"] = dict(err.headers or {})
        out["stats"] = json.loads((await nc.request(f"$SRV.STATS.{name}.{svc.id}", b"",
                                                    timeout=2)).data)
        await nc.close()
        return out

    out = asyncio.run(main())
    for subj, bodies in out.items():
        if subj.startswith("$SRV."):
            assert len(bodies) == 1, subj
    ping = ServicePing.from_dict(out[f"$SRV.PING.{name}.{svc.id}"][0])
    assert (ping.name, ping.version, ping.metadata) == (name, "0.9.1", {"k": "v"})
    assert out[f"$SRV.PING.{name}"][0]["type"] == "io.nats.micro.v1.ping_response"
    raw_info = out[f"$SRV.INFO.{name}"][0]
    assert raw_info["type"] == "io.nats.micro.v1.info_response"
    info = ServiceInfo.from_dict(raw_info)
    assert info.description == "from a notebook"
    assert [(e.name, e.subject, e.queue_group, e.metadata) for e in info.endpoints] == [
        ("echo", f"{subject}.echo", "q", {"e": "1"}), ("fail", f"{subject}.fail", "q", {})]
    assert out["echo"] == b"hi"
    assert out["err"] == {"Nats-Service-Error": "I'm a teapot", "Nats-Service-Error-Code": "418"}
    raw_stats = out["stats"]
    assert raw_stats["type"] == "io.nats.micro.v1.stats_response"
    stats = ServiceStats.from_dict(raw_stats)  # parses "started" with its own strptime
    assert abs(stats.started.timestamp() - svc.started.replace(tzinfo=None).timestamp()) < 1e-3
    by_name = {e.name: e for e in stats.endpoints}
    assert (by_name["echo"].num_requests, by_name["echo"].num_errors) == (1, 0)
    assert (by_name["fail"].num_requests, by_name["fail"].num_errors) == (1, 1)
    assert isinstance(by_name["echo"].processing_time, int)
    assert by_name["echo"].average_processing_time == by_name["echo"].processing_time
    svc.stop()


def test_natsbook_sees_a_nats_py_service(conn: Connection, server: LocalServer, name: str,
                                         subject: str) -> None:
    """A service written with nats-py's micro library, discovered and called by natsbook."""
    async def echo(req: PyRequest) -> None:
        await req.respond(req.data[::-1])

    async def fail(req: PyRequest) -> None:
        raise PyServiceError("422", "unprocessable")

    async def main() -> tuple[pd.DataFrame, pd.DataFrame, bytes, ServiceError]:
        nc = await nats.connect(server.url)
        svc = await py_add_service(nc, name=name, version="3.0.0", description="python",
                                   metadata={"lang": "py"})
        await svc.add_endpoint(name="rev", handler=echo, subject=f"{subject}.rev")
        await svc.add_endpoint(name="fail", handler=fail, subject=f"{subject}.fail")
        await nc.flush()
        before = await asyncio.to_thread(conn.services, name)
        reply = await asyncio.to_thread(conn.request, f"{subject}.rev", b"abc")
        try:
            await asyncio.to_thread(conn.request, f"{subject}.fail", b"")
        except ServiceError as exc:
            error = exc
        after = await asyncio.to_thread(conn.services, name)
        await svc.stop()
        await nc.close()
        return before, after, reply.data, error

    before, after, reply, error = asyncio.run(main())
    assert reply == b"cba"
    assert (error.code, error.description) == (422, "unprocessable")
    assert list(before["endpoint"]) == ["fail", "rev"]
    assert set(before["version"]) == {"3.0.0"} and set(before["description"]) == {"python"}
    assert before["metadata"].iloc[0] == {"lang": "py"}
    assert set(before["queue_group"]) == {"q"} and (before["requests"] == 0).all()
    assert before["started"].notna().all()
    a = after.set_index("endpoint")
    assert a.loc["rev", "requests"] == 1 and a.loc["rev", "errors"] == 0
    assert a.loc["fail", "requests"] == 1 and a.loc["fail", "errors"] == 1
    assert "unprocessable" in a.loc["fail", "last_error"]
    assert a.loc["rev", "average_processing_time"] > pd.Timedelta(0)
