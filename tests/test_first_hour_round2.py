"""The first hour, round two (issue 26): what a new user still tripped over.

Errors that name public API only and say whether the line or the run failed; the request load
test's frame and summary; an Explorer that cannot silently break other notebooks; small display
fixes (ids without separators, nice plot ticks).
"""

from __future__ import annotations

import pytest
from IPython.core.error import UsageError

import natsbook
from natsbook import Connection, LocalServer
from natsbook.errors import NoRespondersError, NotFoundError, QueryError, RequestTimeout
from tests.conftest import TestingShell


# -- item 6: errors ----------------------------------------------------------------------------
def test_magic_runtime_failure_is_the_natsbook_error_in_one_line(
        nats: TestingShell, subject: str, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    # Failed at run time: the natsbook error itself (not UsageError), shown as one line.
    with pytest.raises(NoRespondersError) as exc:
        nats.run_cell(f"%nats_req {subject}.nobody hi --timeout 2")
    assert not isinstance(exc.value, UsageError)
    out = capsys.readouterr().out
    assert out.strip().splitlines() == [
        f"\x1b[0;31mNoRespondersError\x1b[0m: natsbook: no responders on '{subject}.nobody' - "
        "start one (conn.serve(...)) or check the subject"]
    assert "Traceback" not in out
    with pytest.raises(natsbook.errors.ConnectError):
        nats.run_cell("%nats_connect nats://127.0.0.1:1")
    out = capsys.readouterr().out
    assert "ConnectError\x1b[0m: natsbook: cannot reach nats://127.0.0.1:1" in out
    assert len(out.strip().splitlines()) == 1
    # The line itself was wrong: still a UsageError.
    with pytest.raises(UsageError, match="bad subject"):
        nats.run_cell("%nats_req 'a b' hi")
    with pytest.raises(UsageError, match="must be > 0"):
        nats.run_cell(f"%nats_req {subject} hi --timeout 0")
    # A natsbook error from the user's own code keeps its full traceback.
    capsys.readouterr()
    with pytest.raises(NoRespondersError):
        nats.run_cell(f"_c = %nats_info\nimport natsbook\n"
                      f"natsbook.connect(_c['connected_url']).request('{subject}.x', b'')")
    assert "Traceback" in capsys.readouterr().out


def test_magic_error_display_leaves_other_handlers_alone(ip: TestingShell) -> None:
    from natsbook.notebook.magics import load_ipython_extension, unload_ipython_extension

    assert ip.custom_exceptions == (natsbook.NatsbookError,)
    unload_ipython_extension(ip)
    assert ip.custom_exceptions == ()
    ip.set_custom_exc((KeyError,), lambda *a, **k: None)
    load_ipython_extension(ip)  # someone else's handler stays
    assert ip.custom_exceptions == (KeyError,)


def test_kv_hint_names_public_api(nats: TestingShell, conn: Connection, subject: str) -> None:
    with pytest.raises(NotFoundError) as exc:
        conn.kv(subject)
    text = str(exc.value)
    assert f"conn.kv({subject!r}, create=True)" in text
    assert "._" not in text.replace(f"conn.kv({subject!r}", "")  # no private module path
    with pytest.raises(NotFoundError, match=r"create=True"):
        nats.run_cell(f"%nats_kv {subject}")


@pytest.mark.parametrize("typo", ["_natsbook_capt", "natsbook_capture_0", "capture_0"])
def test_sql_typo_never_suggests_internal_tables(conn: Connection, subject: str,
                                                 typo: str) -> None:
    sub = conn.subscribe(f"{subject}.>", name="readings")
    conn.publish(f"{subject}.a", {"x": 1})
    conn.flush()
    sub.wait_pending(5)
    with pytest.raises(QueryError) as exc:
        sub.sql(f"SELECT * FROM {typo}")
    text = str(exc.value)
    assert "_natsbook_capture" not in text and "pg_" not in text and "Did you mean" not in text
    # a suggestion the user can act on stays
    with pytest.raises(QueryError, match='Did you mean "readings"'):
        conn.sql("SELECT * FROM readngs")
    with pytest.raises(QueryError, match='Did you mean "messages"'):
        conn.sql("SELECT * FROM mesages")


def test_request_timeout_still_a_timeout(nats: TestingShell, conn: Connection,
                                         subject: str, server: LocalServer) -> None:
    conn.subscribe(f"{subject}.silent")
    conn.flush()
    with pytest.raises(RequestTimeout, match="wire-tap"):
        nats.run_cell(f"%nats_req {subject}.silent hi --timeout 0.2")
