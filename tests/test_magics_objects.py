"""%nats_obj against the real server: list, show, store, save, fetch and delete objects."""

from __future__ import annotations

import os

import pandas as pd
import pytest
from IPython.core.error import UsageError

from natsbook.errors import NotFoundError
from tests.conftest import TestingShell


def test_nats_obj_verbs(nats: TestingShell, subject: str, tmp_path) -> None:
    src = tmp_path / "in.bin"
    src.write_bytes(os.urandom(300_000))
    with pytest.raises(NotFoundError, match="not found"):
        nats.run_cell(f"%nats_obj {subject}")
    meta = nats.run_cell(f"%nats_obj {subject} data/in.bin --put {src} --create").result
    assert (meta["size"], meta["chunks"]) == (300_000, 3)
    frame = nats.run_cell(f"%nats_obj {subject} -o objs").result
    assert isinstance(frame, pd.DataFrame) and nats.user_ns["objs"] is frame
    assert frame["name"].tolist() == ["data/in.bin"]
    assert nats.run_cell(f"%nats_obj {subject} data/in.bin").result["digest"] == meta["digest"]
    assert nats.run_cell(f"%nats_obj {subject} data/in.bin --bytes").result == src.read_bytes()
    out = tmp_path / "out.bin"
    nats.run_cell(f"%nats_obj {subject} data/in.bin --save {out}")
    assert out.read_bytes() == src.read_bytes()
    assert nats.run_cell(f"%nats_obj {subject} data/in.bin --delete").result is None
    assert nats.run_cell(f"%nats_obj {subject}").result.empty
    assert nats.run_cell(f"%nats_obj {subject} --deleted").result["deleted"].tolist() == [True]
    with pytest.raises(NotFoundError, match="deleted"):
        nats.run_cell(f"%nats_obj {subject} data/in.bin --bytes")
    with pytest.raises(UsageError, match="No such file"):
        nats.run_cell(f"%nats_obj {subject} x --put {tmp_path / 'missing'}")
    with pytest.raises(UsageError, match="needs an object NAME"):
        nats.run_cell(f"%nats_obj {subject} --bytes")
    with pytest.raises(UsageError, match="choose one"):
        nats.run_cell(f"%nats_obj {subject} x --bytes --delete")
