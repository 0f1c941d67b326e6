"""Interop with an independent client (nats-py): what natsbook sends, nats-py receives intact,
and the reverse - payloads, replies and headers."""

from __future__ import annotations

import asyncio

import nats

import natsbook
from natsbook import LocalServer, Msg
from tests.support.waiting import wait_for


def test_natsbook_to_nats_py(server: LocalServer, subject: str) -> None:
    payloads = [b"", b"plain", b"\r\n in the middle \r\n", bytes(range(256)) * 40]

    async def main() -> list:
        nc = await nats.connect(server.url)
        got: list = []
        done = asyncio.Event()

        async def cb(msg) -> None:
            got.append((msg.subject, msg.data, msg.reply, msg.headers))
            if len(got) == len(payloads) + 1:
                done.set()

        await nc.subscribe(f"{subject}.>", cb=cb)
        await nc.flush()
        with natsbook.connect(server.url) as c:
            for i, p in enumerate(payloads):
                c.publish(f"{subject}.{i}", p, reply="my.reply")
            c.publish(f"{subject}.h", b"hb", headers={"Trace-Id": "abc", "Single": "1"})
            c.flush()
            await asyncio.wait_for(done.wait(), 5)
        await nc.close()
        return got

    got = asyncio.run(main())
    for i, p in enumerate(payloads):
        assert got[i] == (f"{subject}.{i}", p, "my.reply", None)
    assert got[-1][1] == b"hb" and got[-1][3] == {"Trace-Id": "abc", "Single": "1"}


def test_nats_py_to_natsbook(server: LocalServer, subject: str) -> None:
    with natsbook.connect(server.url) as c:
        received: list[Msg] = []
        sub = c.subscribe(f"{subject}.>", callback=received.append)
        c.serve(f"{subject}.svc", lambda m: {"len": len(m.data)})

        async def main() -> bytes:
            nc = await nats.connect(server.url)
            for i in range(100):
                await nc.publish(f"{subject}.n.{i}", f"m{i}".encode())
            await nc.publish(f"{subject}.hdr", b"x", headers={"K": "v"})
            reply = await nc.request(f"{subject}.svc", b"12345", timeout=2)
            await nc.flush()
            await nc.close()
            return reply.data

        reply = asyncio.run(main())
        assert reply == b'{"len":5}'
        assert wait_for(lambda: len(received) >= 102)
        df = sub.to_pandas("text")
        n = df[df["subject"].str.startswith(f"{subject}.n.")]
        assert list(n["data"]) == [f"m{i}" for i in range(100)]
        hdr = next(m for m in received if m.subject == f"{subject}.hdr")
        assert hdr.headers is not None and hdr.headers["K"] == "v"


def test_request_from_natsbook_to_nats_py_responder(server: LocalServer, subject: str) -> None:
    import threading

    ready = threading.Event()
    stop = threading.Event()

    def responder() -> None:
        async def main() -> None:
            nc = await nats.connect(server.url)

            async def handler(msg) -> None:
                await msg.respond(msg.data.upper())

            await nc.subscribe(subject, cb=handler)
            await nc.flush()
            ready.set()
            while not stop.is_set():
                await asyncio.sleep(0.02)
            await nc.close()

        asyncio.run(main())

    t = threading.Thread(target=responder)
    t.start()
    try:
        assert ready.wait(5)
        with natsbook.connect(server.url) as c:
            assert c.request(subject, b"hello", timeout=3).data == b"HELLO"
    finally:
        stop.set()
        t.join(5)
