"""The magics take the binary decodings: %nats_msgs --decode msgpack|cbor|NAME and
%config NatsMagics.decode; an unknown name is a UsageError naming what is accepted."""

from __future__ import annotations

import msgpack
import pandas as pd
import pytest
from IPython.core.error import UsageError

import natsbook
from natsbook.notebook.magics import NatsMagics
from tests.conftest import TestingShell
from tests.support.waiting import wait_for


def test_nats_msgs_decodes_msgpack_cbor_and_registered_names(nats: TestingShell, subject: str,
                                                            magics: NatsMagics) -> None:
    conn = magics.conn
    assert conn is not None
    sub = conn.subscribe(f"{subject}.>")
    conn.publish(f"{subject}.a", msgpack.packb({"x": 1, "loc": {"lat": 2.5}}))
    assert wait_for(lambda: sub.received == 1)
    nats.run_cell(f"%nats_msgs {subject}.> --decode msgpack -o df")
    df = nats.user_ns["df"]
    assert df["x"].tolist() == [1] and df["loc.lat"].tolist() == [2.5]
    natsbook.register_decoder("magic-test-fmt", lambda p: {"n": len(p)})
    nats.run_cell(f"%nats_msgs {subject}.> -d magic-test-fmt -o df2")
    assert nats.user_ns["df2"]["n"].tolist() == [len(msgpack.packb({"x": 1, "loc": {"lat": 2.5}}))]
    nats.run_cell("%config NatsMagics.decode = 'msgpack'")
    nats.run_cell(f"%nats_msgs {subject}.> -o df3")
    assert nats.user_ns["df3"]["x"].tolist() == [1]
    with pytest.raises(UsageError, match="msgpack, cbor"):
        nats.run_cell(f"%nats_msgs {subject}.> --decode xml")


def test_nats_sub_declares_the_capture_format(nats: TestingShell, subject: str,
                                              magics: NatsMagics) -> None:
    nats.run_cell(f"%nats_sub {subject} --decode msgpack -o s")
    conn = magics.conn
    assert conn is not None
    for _ in range(3):  # mostly bad: auto alone would not take it for MessagePack
        conn.publish(subject, b"\xc1")
    conn.publish(subject, msgpack.packb({"x": 7}))
    assert wait_for(lambda: nats.user_ns["s"].received == 4)
    nats.run_cell(f"%nats_msgs {subject} -o df")
    assert nats.user_ns["df"]["x"].tolist() == [pd.NA, pd.NA, pd.NA, 7]
    with pytest.raises(UsageError, match="msgpack, cbor"):
        nats.run_cell(f"%nats_sub {subject}.x --decode xml")
