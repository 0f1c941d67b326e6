"""IPython magics against a real nats-server, through an InteractiveShell that re-raises cell
errors (jupysql's TestingShell idea)."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from IPython.core.error import UsageError

import natsbook
from natsbook.notebook.magics import NatsMagics, load_ipython_extension, unload_ipython_extension
from tests.conftest import TestingShell
from tests.support.waiting import wait_for

SECRET = "s3cr3t-Magic-Token"
PASSWORD = "pw-Magic-Secret"


@pytest.fixture(scope="module")
def token_server() -> Iterator[natsbook.LocalServer]:
    with natsbook.local_server(jetstream=False, monitor=False,
                               config=f'authorization {{ token: "{SECRET}" }}') as srv:
        yield srv


# ---------------------------------------------------------------------------- connect / close
def test_connect_returns_connection_and_close(ip: TestingShell, server: natsbook.LocalServer,
                                              magics: NatsMagics,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    ip.run_cell(f"c = %nats_connect {server.url} --name magic-test")
    conn = ip.user_ns["c"]
    assert isinstance(conn, natsbook.Connection) and conn is magics.conn
    assert conn.is_connected and conn.name == "magic-test"
    assert f"connected to {server.url}" in capsys.readouterr().out
    ip.run_cell("%nats_close")
    assert conn.is_closed and magics.conn is None
    assert "closed the connection" in capsys.readouterr().out
    with pytest.raises(UsageError, match="not connected"):
        ip.run_cell("%nats_pub x.y hi")
    ip.run_cell("%nats_close")
    assert "nothing to close" in capsys.readouterr().out


def test_connect_replaces_and_closes_previous(nats: TestingShell, server: natsbook.LocalServer,
                                              magics: NatsMagics) -> None:
    first = magics.conn
    assert first is not None
    nats.run_cell(f"%nats_connect {server.url}")
    assert first.is_closed
    assert magics.conn is not first and magics.conn is not None and magics.conn.is_connected


def test_failed_connect_keeps_previous(nats: TestingShell, magics: NatsMagics) -> None:
    first = magics.conn
    with pytest.raises(natsbook.errors.ConnectError, match="natsbook:"):
        nats.run_cell("%nats_connect nats://127.0.0.1:1")
    assert magics.conn is first and first is not None and first.is_connected


def test_no_url_starts_embedded_server(ip: TestingShell, magics: NatsMagics,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    ip.run_cell("%nats_connect")
    out = capsys.readouterr().out
    srv = magics.server
    assert srv is not None and srv.running
    assert "started an embedded nats-server" in out and srv.url in out
    ip.run_cell("%nats_connect")  # reconnecting reuses it
    assert magics.server is srv and "reusing an embedded" in capsys.readouterr().out
    ip.run_cell("%nats_close")
    assert not srv.running and magics.server is None
    assert "stopped the embedded nats-server" in capsys.readouterr().out


def test_no_url_uses_nats_url(ip: TestingShell, server: natsbook.LocalServer,
                              magics: NatsMagics, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NATS_URL", server.url)
    ip.run_cell("%nats_connect")
    assert magics.server is None
    assert magics.conn is not None and magics.conn.connected_url == server.url


def test_connect_usage_errors(ip: TestingShell) -> None:
    with pytest.raises(UsageError, match="unsupported URL scheme"):
        ip.run_cell("%nats_connect http://127.0.0.1:4222")
    with pytest.raises(UsageError, match="either token= or user="):
        ip.run_cell("%nats_connect nats://127.0.0.1:4222 --token a --user b")
    with pytest.raises(UsageError, match="creds file"):
        ip.run_cell("%nats_connect nats://127.0.0.1:4222 --creds /nonexistent.creds")


# ---------------------------------------------------------------------------- not connected
@pytest.mark.parametrize("line", [
    "%nats_pub a.b hi", "%nats_sub a.b", "%nats_req a.b", "%nats_unsub --all", "%nats_subs",
    "%nats_msgs", "%nats_info", "%%nats_pub a.b\nbody", "%%nats_req a.b\nbody",
])
def test_not_connected(ip: TestingShell, line: str) -> None:
    with pytest.raises(UsageError, match="not connected - run %nats_connect"):
        ip.run_cell(line)


# ---------------------------------------------------------------------------- pub / sub / msgs
def test_pub_sub_msgs(nats: TestingShell, subject: str, magics: NatsMagics,
                      capsys: pytest.CaptureFixture[str]) -> None:
    nats.run_cell(f"%nats_sub {subject}.> -o s")
    sub = nats.user_ns["s"]
    assert isinstance(sub, natsbook.Subscription) and sub.active
    assert f"capturing '{subject}.>'" in capsys.readouterr().out
    nats.run_cell(f"%nats_pub {subject}.a '{{\"x\": 1, \"tag\": \"one\"}}'")
    assert f"published 1 message to '{subject}.a'" in capsys.readouterr().out
    nats.run_cell(f"%nats_pub {subject}.b '{{\"x\": 2, \"tag\": \"two\"}}'")
    assert wait_for(lambda: sub.received == 2)
    nats.run_cell(f"%nats_msgs {subject}.> --decode json -o df")
    df = nats.user_ns["df"]
    assert list(df["x"]) == [1, 2] and list(df["tag"]) == ["one", "two"]
    assert nats.user_ns["_"] is df  # the normal _ works too
    nats.run_cell(f"%nats_msgs {subject}.b")
    assert list(nats.user_ns["_"]["subject"]) == [f"{subject}.b"]
    nats.run_cell("%nats_msgs --last 1 --decode text")
    last = nats.user_ns["_"]
    assert len(last) == 1 and json.loads(last["data"].iloc[0]) == {"x": 2, "tag": "two"}


def test_pub_count_template_and_headers(nats: TestingShell, subject: str) -> None:
    nats.run_cell(f"%nats_sub {subject} -o s")
    nats.run_cell("i = 99")  # a user variable named i must not shadow the template
    nats.run_cell(f"%nats_pub {subject} 'n={{i}}' --count 3 -H K:v{{i}} -H K:two "
                  "-H 'X-Id: a b'")
    sub = nats.user_ns["s"]
    assert wait_for(lambda: sub.received == 3)
    msgs = sub.messages(3)
    assert [m.data for m in msgs] == [b"n=1", b"n=2", b"n=3"]
    assert msgs[0].headers is not None
    assert msgs[0].headers.getall("K") == ["v1", "two"]
    assert msgs[0].headers["X-Id"] == "a b"


def test_pub_count_literal_braces_and_counted_reply(nats: TestingShell, subject: str) -> None:
    """{{i}} is a literal {i} (the docstring's promise) and --reply 'r.{i}' takes the counter,
    never a notebook variable named i; the same in the subject and the cell form."""
    nats.run_cell(f"%nats_sub {subject}.> -o s")
    nats.run_cell("i = 99")
    nats.run_cell(f"%nats_pub {subject}.n{{i}} 'n={{i}} lit={{{{i}}}}' --count 2 "
                  f"--reply '{subject}.r.{{i}}' -H 'K:{{{{i}}}}'")
    nats.run_cell(f"%%nats_pub {subject}.cell --count 2\n{{\"n\": {{i}}, \"lit\": \"{{{{i}}}}\"}}")
    sub = nats.user_ns["s"]
    assert wait_for(lambda: sub.received == 4)
    msgs = sub.messages(4)
    assert [(m.subject, m.data, m.reply) for m in msgs[:2]] == [
        (f"{subject}.n1", b"n=1 lit={i}", f"{subject}.r.1"),
        (f"{subject}.n2", b"n=2 lit={i}", f"{subject}.r.2")]
    assert msgs[0].headers is not None and msgs[0].headers["K"] == "{i}"
    assert [m.data for m in msgs[2:]] == [b'{"n": 1, "lit": "{i}"}', b'{"n": 2, "lit": "{i}"}']
    # Without --count there is no counter: {i} is the notebook's i, {{i}} still a literal.
    nats.run_cell(f"%nats_pub {subject}.plain 'v={{i}} lit={{{{i}}}}' --reply '{subject}.r.{{i}}'")
    assert wait_for(lambda: sub.received == 5)
    last = sub.last_msg
    assert last is not None and (last.data, last.reply) == (b"v=99 lit={i}", f"{subject}.r.99")


def test_pub_reply_and_cell_form(nats: TestingShell, subject: str) -> None:
    nats.run_cell(f"%nats_sub {subject} -o s")
    nats.run_cell(f"%%nats_pub {subject} --reply {subject}.inbox\n"
                  '{"order": 7,\n "items": [1, 2]}\n')
    sub = nats.user_ns["s"]
    assert wait_for(lambda: sub.received == 1)
    msg = sub.last_msg
    assert msg is not None and msg.reply == f"{subject}.inbox"
    assert msg.json() == {"order": 7, "items": [1, 2]}
    with pytest.raises(UsageError, match="cell body"):
        nats.run_cell(f"%%nats_pub {subject} payload\nbody")


def test_var_expansion(nats: TestingShell, subject: str) -> None:
    nats.run_cell(f"subj = '{subject}'; n = 41")
    nats.run_cell("%nats_sub {subj}.* -o s")
    sub = nats.user_ns["s"]
    assert sub.subject == f"{subject}.*"
    nats.run_cell("%nats_pub {subj}.x 'answer={n + 1}'")
    # JSON objects are sent as typed, never taken for {fields}; {{x}} is a literal {x}.
    nats.run_cell('%nats_pub {subj}.y \'{"id":1, "nested": {"a":2}}\'')
    nats.run_cell("%nats_pub {subj}.z '{{n}} {missing_name}'")
    assert wait_for(lambda: sub.received == 3)
    assert [m.data for m in sub.messages(3)] == [
        b"answer=42", b'{"id":1, "nested": {"a":2}}', b"{n} {missing_name}"]


def test_pub_errors(nats: TestingShell, subject: str) -> None:
    with pytest.raises(UsageError, match="bad subject 'a b'"):
        nats.run_cell("%nats_pub 'a b' hi")
    with pytest.raises(UsageError, match="bad subject"):
        nats.run_cell(f"%nats_pub {subject}.* hi")
    with pytest.raises(UsageError, match="KEY:VALUE"):
        nats.run_cell(f"%nats_pub {subject} hi -H novalue")
    with pytest.raises(UsageError, match="--count 0"):
        nats.run_cell(f"%nats_pub {subject} hi --count 0")
    with pytest.raises(UsageError, match="quote"):
        nats.run_cell(f"%nats_pub {subject} 'unbalanced")
    with pytest.raises(UsageError, match="unrecognized arguments"):
        nats.run_cell(f"%nats_pub {subject} hello world")


def test_sub_errors(nats: TestingShell, subject: str) -> None:
    with pytest.raises(UsageError, match="bad subject"):
        nats.run_cell(f"%nats_sub {subject}..x")
    with pytest.raises(UsageError, match="valid Python variable"):
        nats.run_cell(f"%nats_sub {subject} -o 1abc")
    with pytest.raises(UsageError, match="max_msgs"):
        nats.run_cell(f"%nats_sub {subject} --max 0")
    with pytest.raises(UsageError, match="bad subject"):
        nats.run_cell("%nats_msgs 'a..b'")
    with pytest.raises(UsageError, match="decode='yaml' is not one of auto, json, text, bytes"):
        nats.run_cell("%nats_msgs --decode yaml")


def test_sub_max_and_queue(nats: TestingShell, subject: str) -> None:
    nats.run_cell(f"%nats_sub {subject} --max 2 --queue workers -o s")
    sub = nats.user_ns["s"]
    assert sub.queue == "workers"
    nats.run_cell(f"%nats_pub {subject} x --count 5")
    assert wait_for(lambda: not sub.active)
    assert sub.received == 2


def test_unsub_and_subs(nats: TestingShell, subject: str,
                        capsys: pytest.CaptureFixture[str]) -> None:
    nats.run_cell(f"%nats_sub {subject}.a -o first")
    nats.run_cell(f"%nats_sub {subject}.b --queue q --max 10")
    nats.run_cell(f"%nats_pub {subject}.a one")
    assert wait_for(lambda: nats.user_ns["first"].received == 1)
    nats.run_cell("%nats_subs")
    subs = nats.user_ns["_"]
    assert isinstance(subs, pd.DataFrame)
    assert list(subs["subject"]) == [f"{subject}.a", f"{subject}.b"]
    row = subs.iloc[0]
    assert row["name"] == "first" and row["received"] == 1 and row["stored"] == 1
    assert row["last_subject"] == f"{subject}.a"
    assert subs.iloc[1]["queue"] == "q" and subs.iloc[1]["max"] == 10
    capsys.readouterr()
    nats.run_cell(f"%nats_unsub {subject}.a")
    assert "stopped 1 subscription " in capsys.readouterr().out
    assert not nats.user_ns["first"].active
    with pytest.raises(UsageError, match="no active subscription"):
        nats.run_cell(f"%nats_unsub {subject}.a")
    with pytest.raises(UsageError, match="SUBJECT or --all"):
        nats.run_cell("%nats_unsub")
    with pytest.raises(UsageError, match="SUBJECT or --all"):
        nats.run_cell(f"%nats_unsub {subject}.b --all")
    nats.run_cell("%nats_unsub --all")
    nats.run_cell("%nats_subs")
    assert nats.user_ns["_"].empty
    # what was captured stays readable
    nats.run_cell(f"%nats_msgs {subject}.>")
    assert len(nats.user_ns["_"]) == 1


# ---------------------------------------------------------------------------- request
@pytest.fixture
def responder(conn: natsbook.Connection, subject: str) -> str:
    """A service on another connection: echoes JSON, adds headers."""

    def handle(msg: natsbook.Msg) -> Any:
        if msg.data == b"boom":
            raise RuntimeError("exploded")
        body = msg.json() if msg.data.startswith(b"{") else msg.data.decode()
        hdr = msg.headers.to_dict() if msg.headers else {}
        return {"echo": body, "headers": hdr}

    conn.serve(f"{subject}.svc", handle)
    conn.subscribe(f"{subject}.silent")  # listens, never answers
    return f"{subject}.svc"


def test_req_line_and_cell(nats: TestingShell, responder: str,
                           capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    nats.run_cell(f"r = %nats_req {responder} '{{\"q\": 1}}' -H Trace:abc")
    msg = nats.user_ns["r"]
    assert isinstance(msg, natsbook.Msg)
    assert msg.json() == {"echo": {"q": 1}, "headers": {"Trace": ["abc"]}}
    out = capsys.readouterr().out
    assert f"reply from '{responder}' in " in out and " ms (" in out
    assert '  "echo": {\n    "q": 1\n  }' in out  # pretty JSON
    nats.run_cell(f"%%nats_req {responder}\nplain text")
    assert nats.user_ns["_"].json()["echo"] == "plain text"


def test_req_errors(nats: TestingShell, responder: str, subject: str) -> None:
    with pytest.raises(natsbook.errors.RequestTimeout, match=r"no reply on .* within 0\.2s"):
        nats.run_cell(f"%nats_req {subject}.silent hi --timeout 0.2")
    with pytest.raises(natsbook.errors.NoRespondersError, match="no responders"):
        nats.run_cell(f"%nats_req {subject}.nobody hi")
    with pytest.raises(natsbook.errors.ServiceError, match="exploded"):
        nats.run_cell(f"%nats_req {responder} boom")
    with pytest.raises(UsageError, match="bad subject"):
        nats.run_cell("%nats_req 'a b' hi")
    with pytest.raises(UsageError, match="must be > 0"):
        nats.run_cell(f"%nats_req {responder} hi --timeout 0")


@pytest.mark.parametrize(("cell", "flag", "values", "accepted"), [
    ("%nats_req {s}.svc hi --timeout {v}", "--timeout",
     ["inf", "nan", "0", "-1", "1e9", "soon"], "> 0 seconds and at most 86,400"),
    ("%nats_pub {s} hi --count {v}", "--count",
     ["0", "-3", "1.5", "inf", "nan", "10000001", str(10**30), "many"], "1 to 10,000,000"),
    ("%nats_sub {s} --max {v}", "--max", ["0", "-1", "2.5", "nan", str(10**12)],
     "1 to 1,000,000,000"),
    ("%nats_req {s}.svc hi --replies {v}", "--replies", ["0", "-1", "2.5", "nan", "1000001"],
     "1 to 1,000,000"),
    ("%nats_req {s}.svc hi --count {v}", "--count", ["0", "-3", "1.5", "inf", "10000001"],
     "1 to 10,000,000"),
    ("%nats_req {s}.svc hi --count 5 --concurrency {v}", "--concurrency",
     ["0", "-1", "2.5", "nan", "100001"], "1 to 100,000"),
    ("%nats_msgs --last {v}", "--last", ["0", "-1", "inf", "nan", str(10**12)],
     "1 to 1,000,000,000"),
    ("%nats_stream S --last {v}", "--last", ["0", "-2", "inf", "x"], "1 to 1,000,000,000"),
    ("%nats_stream S --start-seq {v}", "--start-seq", ["0", "-1", "nan", str(2**64)],
     "1 to 18,446,744,073,709,551,615"),
])
def test_numbers_are_validated_in_every_magic(nats: TestingShell, magics: NatsMagics,
                                              subject: str, cell: str, flag: str,
                                              values: list[str], accepted: str) -> None:
    """Every numeric flag: a one-line UsageError naming the flag, the value and the accepted
    range - never an OverflowError traceback or a 'within nans' - and nothing is sent."""
    conn = magics.conn
    assert conn is not None
    sent, subs = conn.stats["out_msgs"], len(conn.subscriptions)
    for value in values:
        with pytest.raises(UsageError) as exc:
            nats.run_cell(cell.format(s=subject, v=value))
        text = str(exc.value)
        assert "\n" not in text and f"{flag} {value} must be" in text and accepted in text
    assert conn.stats["out_msgs"] == sent and len(conn.subscriptions) == subs


def test_config_timeout_must_be_finite_and_positive(ip: TestingShell,
                                                    magics: NatsMagics) -> None:
    for bad in ("float('inf')", "float('nan')", "-1", "0", "1e9"):
        ip.run_cell(f"%config NatsMagics.timeout = {bad}")  # %config logs the TraitError
        assert magics.timeout == 5.0
    ip.run_cell("%config NatsMagics.timeout = 86400")
    assert magics.timeout == 86400.0


# ---------------------------------------------------------------------------- info / config
def test_info(nats: TestingShell, server: natsbook.LocalServer) -> None:
    nats.run_cell("%nats_info")
    info = nats.user_ns["_"]
    assert info["status"] == "connected" and info["connected_url"] == server.url
    assert info["jetstream"] is True
    assert info["version"] == info["server_info"]["version"] == natsbook.monitor(
        server).varz()["version"].iloc[0]
    assert info["rtt_ms"] is not None and info["max_payload"] == 1024 * 1024
    assert info["stats"] == {**info["stats"], "reconnects": 0, "unknown_sid_msgs": 0}
    assert info["server_info"]["server_id"] == natsbook.monitor(
        server).varz()["server_id"].iloc[0]
    with pytest.raises(UsageError, match="no arguments"):
        nats.run_cell("%nats_info extra")


def test_config_timeout_and_decode(nats: TestingShell, responder: str, subject: str,
                                   magics: NatsMagics) -> None:
    nats.run_cell("%config NatsMagics.timeout = 0.3")
    assert magics.timeout == 0.3
    with pytest.raises(natsbook.errors.RequestTimeout, match=r"within 0\.3s"):
        nats.run_cell(f"%nats_req {subject}.silent hi")
    nats.run_cell(f"%nats_sub {subject}.d -o s")
    nats.run_cell(f"%nats_pub {subject}.d '{{\"a\": 1}}'")
    assert wait_for(lambda: nats.user_ns["s"].received == 1)
    nats.run_cell("%nats_msgs")
    assert "a" in nats.user_ns["_"].columns  # auto: JSON flattened
    nats.run_cell("%config NatsMagics.decode = 'text'")
    nats.run_cell("%nats_msgs")
    assert list(nats.user_ns["_"]["data"]) == ['{"a": 1}']
    nats.run_cell("%config NatsMagics.decode = 'bytes'")
    nats.run_cell("%nats_msgs --decode json")  # the flag wins
    assert "a" in nats.user_ns["_"].columns
    nats.run_cell("%config NatsMagics.timeout = 0")  # %config logs the TraitError
    assert magics.timeout == 0.3


def test_config_display_limit(nats: TestingShell, subject: str,
                              capsys: pytest.CaptureFixture[str]) -> None:
    before = pd.get_option("display.max_rows"), pd.get_option("display.min_rows")
    nats.run_cell(f"%nats_sub {subject} -o s")
    nats.run_cell(f"%nats_pub {subject} 'row {{i}}' --count 30")
    assert wait_for(lambda: nats.user_ns["s"].received == 30)
    nats.run_cell("%config NatsMagics.display_limit = 6")
    capsys.readouterr()
    nats.run_cell("%nats_msgs --decode text")
    out = capsys.readouterr().out
    assert len(nats.user_ns["_"]) == 30  # the frame keeps every row
    assert "row 1" in out and "row 30" in out and "row 15" not in out and "..." in out
    assert (pd.get_option("display.max_rows"), pd.get_option("display.min_rows")) == before
    nats.run_cell("%config NatsMagics.display_limit = 0")
    nats.run_cell("%nats_msgs --decode text --last 20")
    assert "row 20" in capsys.readouterr().out


def test_config_default_server(ip: TestingShell, server: natsbook.LocalServer,
                               magics: NatsMagics) -> None:
    ip.run_cell(f"%config NatsMagics.default_server = '{server.url}'")
    ip.run_cell("%nats_connect")
    assert magics.server is None
    assert magics.conn is not None and magics.conn.connected_url == server.url


def test_config_listing(ip: TestingShell, capsys: pytest.CaptureFixture[str]) -> None:
    ip.run_cell("%config NatsMagics")
    out = capsys.readouterr().out
    for option in ("timeout", "decode", "display_limit", "default_server", "live_status"):
        assert f"NatsMagics.{option}" in out


# ---------------------------------------------------------------------------- live status
def test_live_status_widget(nats: TestingShell, subject: str, magics: NatsMagics) -> None:
    nats.run_cell("%config NatsMagics.live_status = 'widget'")
    nats.run_cell("%config NatsMagics.status_interval = 0.25")
    nats.run_cell(f"%nats_sub {subject}.> --max 3 -o s")
    sub = nats.user_ns["s"]
    (status,) = magics._ticker._items
    assert f"{subject}.&gt;" in status.widget.value and "0 msgs" in status.widget.value
    assert threading.current_thread() is threading.main_thread()
    nats.run_cell(f"%nats_pub {subject}.k hi --count 3")
    assert wait_for(lambda: "3 msgs" in status.widget.value)
    assert f"last: {subject}.k" in status.widget.value
    # the subscription ended (--max): the line says so and the timer stops by itself
    assert wait_for(lambda: not magics._ticker.running)
    assert "stopped" in status.widget.value and not sub.active


def test_live_status_stops_on_close(nats: TestingShell, subject: str,
                                    magics: NatsMagics) -> None:
    nats.run_cell("%config NatsMagics.live_status = 'widget'")
    nats.run_cell(f"%nats_sub {subject}")
    assert magics._ticker.running
    nats.run_cell("%nats_close")
    assert not magics._ticker.running


def test_live_status_off(nats: TestingShell, subject: str, magics: NatsMagics,
                         capsys: pytest.CaptureFixture[str]) -> None:
    nats.run_cell("%config NatsMagics.live_status = 'off'")
    capsys.readouterr()
    nats.run_cell(f"s = %nats_sub {subject}")
    assert capsys.readouterr().out == "" and not magics._ticker.running


# ---------------------------------------------------------------------------- credentials
def test_wrong_credentials(ip: TestingShell, token_server: natsbook.LocalServer,
                           capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(natsbook.errors.AuthError, match="authorization violation") as exc:
        ip.run_cell(f"%nats_connect {token_server.url} --token wrong-token-xyz")
    assert "check token/user/password" in str(exc.value)
    assert "wrong-token-xyz" not in str(exc.value)
    with pytest.raises(natsbook.errors.AuthError, match="authorization violation"):
        ip.run_cell(f"%nats_connect {token_server.url}")
    captured = capsys.readouterr()
    assert "wrong-token-xyz" not in captured.out + captured.err


def history_texts(ip: TestingShell) -> str:
    hm = ip.history_manager
    hm.writeout_cache()
    db = sqlite3.connect(str(hm.hist_file))
    try:
        rows = db.execute("SELECT source, source_raw FROM history").fetchall()
    finally:
        db.close()
    parts = [repr(rows), repr(hm.input_hist_raw), repr(hm.input_hist_parsed),
             repr(list(hm.get_range(raw=True))), repr(list(hm.get_range(raw=False)))]
    parts += [repr(v) for k, v in ip.user_ns.items() if k.startswith("_i")]
    parts.append(repr(ip.user_ns.get("In")))
    return "\n".join(parts)


def test_secrets_never_shown(ip: TestingShell, token_server: natsbook.LocalServer,
                             magics: NatsMagics, capsys: pytest.CaptureFixture[str]) -> None:
    url = token_server.url
    host = url.removeprefix("nats://")
    ip.run_cell(f"%nats_connect {url} --token {SECRET}")
    assert magics.conn is not None and magics.conn.is_connected
    out = capsys.readouterr().out
    assert "replaced by *** in this session's input history" in out
    ip.run_cell("c = _")
    ip.run_cell("c")  # displayed
    ip.run_cell(f"%nats_connect nats://{SECRET}@{host}")
    ip.run_cell("%nats_info")
    ip.run_cell("print(repr(c), str(c), c.servers)")
    ip.run_cell("tok = " + repr(SECRET))
    shown = capsys.readouterr().out
    ip.run_cell("%nats_connect {url} --token {tok}".replace("{url}", url))
    # the secret came from a variable: nothing to scrub, and the assignment cell is untouched
    assert "replaced by ***" not in capsys.readouterr().out
    assert f"tok = {SECRET!r}" in ip.user_ns["In"]
    capsys.readouterr()
    print(shown)
    ip.run_cell("%history -n")
    with pytest.raises(UsageError) as exc:
        ip.run_cell(f"%nats_connect {url} --tokn {SECRET}")
    assert SECRET not in str(exc.value) and "not shown" in str(exc.value)
    with pytest.raises(natsbook.errors.AuthError):
        ip.run_cell(f"%nats_connect {url} --user admin --password {PASSWORD}")
    ip.run_cell("%history -n -g nats_connect")
    captured = capsys.readouterr()
    shown = captured.out + captured.err
    # %history lists the cell that bound the secret to a variable, as it should
    assert SECRET not in shown.replace(f"tok = {SECRET!r}", "") and PASSWORD not in shown
    assert "--token ***" in shown and "--token {tok}" in shown
    conn = magics.conn
    assert conn is not None
    assert SECRET not in repr(conn) and SECRET not in str(conn.servers)
    assert SECRET not in repr(magics.conn) and SECRET not in repr(ip.user_ns["c"])
    history = history_texts(ip)
    # Only the cell where the user bound the secret to a variable still holds it; every
    # %nats_connect line has it replaced.
    assert SECRET not in history.replace(f"tok = {SECRET!r}", "")
    assert PASSWORD not in history
    assert "--token ***" in history and f"nats://***@{host}" in history


def test_secrets_scrubbed_exactly_whatever_fails(ip: TestingShell,
                                                token_server: natsbook.LocalServer,
                                                magics: NatsMagics,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    """Only the secret characters go from the history (raw and transformed cells, _iN, the
    database), also when the line does not parse; everything else stays as typed."""
    url = token_server.url
    host = url.removeprefix("nats://")
    assert "3" in SECRET  # so a global replace of "3" would show
    cases = [  # (cell, what the history must hold)
        # an unknown flag after a password URL
        (f"%nats_connect nats://admin:{PASSWORD}@{host} --bogus-flag x",
         f"%nats_connect nats://admin:***@{host} --bogus-flag x"),
        # a missing value after the secret
        (f"%nats_connect {url} --token {SECRET} --name",
         f"%nats_connect {url} --token *** --name"),
        # an unknown flag whose value is a digit of the secret; code around it in the cell
        (f"y = 33\n%nats_connect nats://{SECRET}@{host} --timeout 3\nz = 3",
         f"y = 33\n%nats_connect nats://***@{host} --timeout 3\nz = 3"),
        # a mistyped secret flag; an unbalanced quote
        (f"%nats_connect {url} --tokn {SECRET}", f"%nats_connect {url} --tokn ***"),
        (f"%nats_connect {url} --token '{SECRET}", f"%nats_connect {url} --token ***"),
    ]
    expected = [want for _, want in cases]
    for line, want in cases:
        with pytest.raises(UsageError) as exc:
            ip.run_cell(line)
        assert SECRET not in str(exc.value) and PASSWORD not in str(exc.value)
        hm = ip.history_manager
        assert hm.input_hist_raw[-1] == want
        assert ip.user_ns[f"_i{ip.execution_count - 1}"] == want
        assert SECRET not in hm.input_hist_parsed[-1] and "***" in hm.input_hist_parsed[-1]
    assert "--timeout 3" in ip.user_ns["In"][-3] and "y = 33" in ip.user_ns["In"][-3]
    # a connect that works: --token=VALUE, the rest of the line (n3) kept
    ip.run_cell(f"c = %nats_connect {url} --token={SECRET} --name n3")
    assert magics.conn is not None and magics.conn.name == "n3"
    assert "replaced by ***" in capsys.readouterr().out
    assert ip.history_manager.input_hist_raw[-1] == (
        f"c = %nats_connect {url} --token=*** --name n3")
    history = history_texts(ip)
    assert SECRET not in history and PASSWORD not in history
    assert "--timeout 3" in history and "y = 33" in history and "--name n3" in history
    hm = ip.history_manager
    hm.writeout_cache()
    db = sqlite3.connect(str(hm.hist_file))
    try:
        raws = [r for (r,) in db.execute("SELECT source_raw FROM history WHERE session=? "
                                         "ORDER BY line", (hm.session_number,))]
    finally:
        db.close()
    assert raws[-6:] == [*expected, f"c = %nats_connect {url} --token=*** --name n3"]


# ---------------------------------------------------------------------------- natscli contexts
def write_context(root: Path, name: str, data: dict[str, Any], select: bool = False) -> Path:
    d = root / "nats" / "context"
    d.mkdir(parents=True, exist_ok=True)
    path = d / f"{name}.json"
    path.write_text(json.dumps(data))
    if select:
        (root / "nats" / "context.txt").write_text(name + "\n")
    return path


def test_context(ip: TestingShell, token_server: natsbook.LocalServer, server:
                 natsbook.LocalServer, magics: NatsMagics, tmp_path: Path,
                 monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    xdg = tmp_path / "xdg"
    write_context(xdg, "secure", {"description": "token server", "url": token_server.url,
                                  "token": SECRET, "user": "", "creds": "", "nsc": ""})
    write_context(xdg, "plain", {"url": server.url}, select=True)
    ip.run_cell("%nats_connect --context secure")
    assert magics.conn is not None and magics.conn.connected_url == token_server.url
    assert "(context 'secure')" in capsys.readouterr().out
    # bare --context: the selected one (context.txt), then $NATS_CONTEXT
    ip.run_cell("%nats_connect --context")
    assert magics.conn.connected_url == server.url
    monkeypatch.setenv("NATS_CONTEXT", "secure")
    ip.run_cell("%nats_connect --context")
    assert magics.conn.connected_url == token_server.url
    # no URL and $NATS_CONTEXT set: the context is used
    ip.run_cell("%nats_connect")
    assert magics.conn.connected_url == token_server.url and magics.server is None
    # a URL argument wins over the context's; flags win over its credentials
    ip.run_cell(f"%nats_connect {server.url} --context plain")
    assert magics.conn.connected_url == server.url
    with pytest.raises(natsbook.errors.AuthError, match="authorization violation"):
        ip.run_cell("%nats_connect --context secure --token wrong")
    captured = capsys.readouterr()
    assert SECRET not in captured.out + captured.err
    assert SECRET not in history_texts(ip)


def test_context_errors(ip: TestingShell, tmp_path: Path) -> None:
    xdg = tmp_path / "xdg"
    with pytest.raises(UsageError, match="no natscli context selected"):
        ip.run_cell("%nats_connect --context")
    with pytest.raises(UsageError, match="no contexts in"):
        ip.run_cell("%nats_connect --context nope")
    write_context(xdg, "one", {"url": "nats://127.0.0.1:1"})
    write_context(xdg, "jwt", {"url": "nats://127.0.0.1:1", "user_jwt": "eyJ..."})
    write_context(xdg, "remote", {"creds": "op://vault/item/field"})
    (xdg / "nats" / "context" / "broken.json").write_text("{not json")
    with pytest.raises(UsageError, match="known contexts: broken, jwt, one, remote"):
        ip.run_cell("%nats_connect --context nope")
    with pytest.raises(UsageError, match="user_jwt"):
        ip.run_cell("%nats_connect --context jwt")
    with pytest.raises(UsageError, match="op: URI"):
        ip.run_cell("%nats_connect --context remote")
    with pytest.raises(UsageError, match="not valid JSON"):
        ip.run_cell("%nats_connect --context broken")
    with pytest.raises(UsageError, match="invalid context name"):
        ip.run_cell("%nats_connect --context ../etc")


def test_context_repr_hides_secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from natsbook.notebook._context import load_context

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    write_context(tmp_path / "xdg", "s", {"url": "nats://h:4222", "token": SECRET,
                                          "nkey": "~/seed.nk", "tls_first": True})
    ctx = load_context("s")
    assert SECRET not in repr(ctx) and "auth=token+nkey" in repr(ctx)
    kw = ctx.connect_kwargs()
    assert kw["servers"] == ["nats://h:4222"] and kw["token"] == SECRET
    assert kw["tls_handshake_first"] is True and not kw["nkey_seed"].startswith("~")


def test_context_repr_hides_credentials_in_its_url(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from natsbook.notebook._context import load_context

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    urls = (f"nats://admin:{PASSWORD}@h1:4222, tls://{SECRET}@h2:4222,nats://h3:4222,"
            "nats://u:p@ss,w:rd@h4:1")
    write_context(tmp_path / "xdg", "u", {"url": urls})
    ctx = load_context("u")
    for text in (repr(ctx), str(ctx), f"{ctx}", repr([ctx])):
        assert PASSWORD not in text and SECRET not in text and "admin" not in text
        assert "ss,w" not in text and "rd@" not in text
    assert "nats://***@h1:4222, tls://***@h2:4222,nats://h3:4222,nats://***@h4:1" in repr(ctx)
    assert "auth=url" in repr(ctx)
    assert ctx.connect_kwargs()["servers"][0] == f"nats://admin:{PASSWORD}@h1:4222"


# ---------------------------------------------------------------------------- extension
def test_unload_closes_everything(ip: TestingShell, server: natsbook.LocalServer,
                                  magics: NatsMagics) -> None:
    ip.run_cell(f"%nats_connect {server.url}")
    conn = magics.conn
    unload_ipython_extension(ip)
    assert conn is not None and conn.is_closed
    assert "nats_pub" not in ip.magics_manager.magics["line"]
    load_ipython_extension(ip)
    load_ipython_extension(ip)  # loading twice registers once
    assert ip.magics_manager.registry["NatsMagics"] is not magics


def test_nkey_and_mutual_tls_flags_and_context(ip: TestingShell, magics: NatsMagics,
                                               tmp_path: Path) -> None:
    import trustme

    from tests.support.nats_jwt import make_nkey_user

    ca = trustme.CA()
    server_cert = ca.issue_cert("127.0.0.1", "localhost")
    client_cert = ca.issue_cert("client@natsbook")
    f = {name: str(tmp_path / f"{name}.pem") for name in ("ca", "srv", "srv_key", "cli",
                                                             "cli_key")}
    ca.cert_pem.write_to_path(f["ca"])
    server_cert.cert_chain_pems[0].write_to_path(f["srv"])
    server_cert.private_key_pem.write_to_path(f["srv_key"])
    client_cert.cert_chain_pems[0].write_to_path(f["cli"])
    client_cert.private_key_pem.write_to_path(f["cli_key"])
    seed, pub = make_nkey_user()
    seed_file = tmp_path / "user.nk"
    seed_file.write_bytes(seed)
    cfg = (f'tls {{ cert_file: "{f["srv"]}", key_file: "{f["srv_key"]}", '
           f'ca_file: "{f["ca"]}", verify: true, timeout: 2 }}\n'
           f"authorization {{ users = [ {{ nkey: {pub} }} ] }}")
    with natsbook.local_server(jetstream=False, monitor=False, config=cfg) as srv:
        url = srv.url.replace("nats://", "tls://")
        ip.run_cell(f"%nats_connect {url} --nkey {seed_file} --tls-ca {f['ca']} "
                    f"--tls-cert {f['cli']} --tls-key {f['cli_key']}")
        assert magics.conn is not None and magics.conn.is_connected
        # no client certificate
        with pytest.raises(natsbook.errors.ConnectError, match="natsbook:"):
            ip.run_cell(f"%nats_connect {url} --nkey {seed_file} --tls-ca {f['ca']}")
        write_context(tmp_path / "xdg", "mtls", {
            "url": url, "nkey": str(seed_file), "ca": f["ca"], "cert": f["cli"],
            "key": f["cli_key"]})
        ip.run_cell("%nats_connect --context mtls")
        assert magics.conn.is_connected and magics.conn.connected_url == url
        ip.run_cell("%nats_close")


def test_unquoted_json_payload(nats: TestingShell, server: natsbook.LocalServer) -> None:
    """A JSON payload typed as is after the subject (no shell quoting) is sent verbatim."""
    with natsbook.connect(server.url) as c:
        sub = c.subscribe("magic.json.>")
        nats.run_cell('%nats_pub magic.json.a {"temp": 20.1, "tags": ["x y", "z"]}')
        nats.run_cell('%nats_pub magic.json.b [1, 2] --count 2')
        nats.run_cell("%nats_pub magic.json.c '{\"quoted\": true}'")
        c.flush()
        assert wait_for(lambda: len(sub) == 4)
        assert sub.to_pandas("bytes")["data"].tolist() == [
            b'{"temp": 20.1, "tags": ["x y", "z"]}', b"[1, 2]", b"[1, 2]", b'{"quoted": true}']
        c.serve("magic.json.svc", lambda m: m.json())
        reply = nats.run_cell('%nats_req magic.json.svc {"q": 1} --timeout 2').result
        assert reply.json() == {"q": 1}
        with pytest.raises(UsageError, match="two payloads"):
            nats.run_cell('%nats_pub magic.json.a {"a": 1} extra')


def test_count_templates_subject_too(nats: TestingShell, server: natsbook.LocalServer) -> None:
    with natsbook.connect(server.url) as c:
        sub = c.subscribe("magic.tpl.>")
        nats.run_cell("%nats_pub magic.tpl.dev{i} '{\"n\": {i}}' --count 3")
        c.flush()
        assert wait_for(lambda: len(sub) == 3)
        df = sub.to_pandas("json")
        assert df["subject"].tolist() == ["magic.tpl.dev1", "magic.tpl.dev2", "magic.tpl.dev3"]
        assert df["n"].tolist() == [1, 2, 3]


def test_req_replies_and_count(nats: TestingShell, responder: str, subject: str,
                               capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    nats.run_cell(f"df = %nats_req {responder} hi --replies 3 --timeout 0.3")
    df = nats.user_ns["df"]
    assert len(df) == 1 and "latency_ms" in df.columns
    assert f"1 reply from '{responder}' (asked for 3" in capsys.readouterr().out
    nats.run_cell(f"df = %nats_req {responder} hi --count 50 --concurrency 7")
    df = nats.user_ns["df"]
    assert len(df) == 50 and df["error"].isna().all()
    out = capsys.readouterr().out
    assert f"50 requests to '{responder}', 7 in flight at most: 50 ok, 0 failed" in out
    assert "p50" in out and "p99" in out
    nats.run_cell(f"df = %nats_req {subject}.nobody hi --count 3")
    assert "errors: NoRespondersError 3" in capsys.readouterr().out
    with pytest.raises(UsageError, match="do not go together"):
        nats.run_cell(f"%nats_req {responder} hi --count 3 --replies 2")
    with pytest.raises(UsageError, match="--concurrency goes with --count"):
        nats.run_cell(f"%nats_req {responder} hi --concurrency 3")
    with pytest.raises(natsbook.errors.NoRespondersError, match="no responders"):
        nats.run_cell(f"%nats_req {subject}.nobody hi --replies 2")
