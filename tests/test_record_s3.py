"""``natsbook record --out s3://...`` through pyarrow's filesystem layer, against moto's S3
server (a subprocess on a free loopback port, stopped by the test's handle)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

import natsbook
from natsbook import jetstream as js
from natsbook.capture import PartWriter
from tests.test_record import Recorders, recorders

__all__ = ["recorders"]

pytest.importorskip("moto")
pafs = pytest.importorskip("pyarrow.fs")


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A moto S3 server with a bucket ``rec``; yields the query the URLs need."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p",
                             str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "moto did not start"
                assert proc.poll() is None, "moto exited"
                time.sleep(0.1)
        for key, value in (("AWS_ACCESS_KEY_ID", "test"), ("AWS_SECRET_ACCESS_KEY", "test"),
                           ("AWS_DEFAULT_REGION", "us-east-1"), ("AWS_EC2_METADATA_DISABLED",
                                                                 "true")):
            monkeypatch.setenv(key, value)
        query = f"endpoint_override=127.0.0.1:{port}&scheme=http&region=us-east-1"
        fs = pafs.S3FileSystem(endpoint_override=f"127.0.0.1:{port}", scheme="http",
                               region="us-east-1", allow_bucket_creation=True)
        fs.create_dir("rec")
        yield query
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def test_record_into_s3_and_read_back(server: natsbook.LocalServer, subject: str, s3: str,
                                      recorders: Recorders) -> None:
    url = f"s3://rec/{subject}?{s3}"
    with natsbook.connect(server.url) as conn:
        js.add_stream(conn, subject, [f"{subject}.>"])
        try:
            for i in range(1200):
                conn.publish(f"{subject}.d{i % 4}", {"i": i})
            conn.flush()
            proc = recorders.start([sys.executable, "-m", "natsbook.lab", "record", "--url",
                                    server.url, "--stream", subject, "--out", url, "--once",
                                    "--part-rows", "500", "--decode", "json"])
            _, err = proc.communicate(timeout=90)
            assert proc.returncode == 0, err
            fs = pafs.S3FileSystem(endpoint_override=s3.split("&")[0].split("=")[1],
                                   scheme="http", region="us-east-1")
            names = [f.base_name for f in fs.get_file_info(
                pafs.FileSelector(f"rec/{subject}", recursive=True))
                if f.type == pafs.FileType.File]
            assert sorted(n for n in names if n.startswith("part-"))[0].startswith(
                "part-000000000001-000000000500-")
            assert "_natsbook.json" in names and not any(n.endswith(".tmp") for n in names)
            frame = natsbook.read_capture(url)
            assert frame["stream_seq"].tolist() == list(range(1, 1201))
            assert frame["i"].tolist() == list(range(1200))  # the declared decode: json
            got = natsbook.sql("SELECT subject, count(*) AS n FROM messages GROUP BY 1 "
                               "ORDER BY 1", url)
            assert got["n"].tolist() == [300] * 4
            assert js.consumer_info(conn, subject, "natsbook-record")["num_ack_pending"] == 0
            # A bucket that does not exist: the recorder stops before consuming anything.
            proc = recorders.start([sys.executable, "-m", "natsbook.lab", "record", "--url",
                                    server.url, "--stream", subject, "--durable", "other",
                                    "--out", f"s3://nobucket/x?{s3}", "--once"])
            _, err = proc.communicate(timeout=90)
            assert proc.returncode == 1 and "make the output writable" in err
            with pytest.raises(natsbook.errors.NotFoundError):
                js.consumer_info(conn, subject, "other")
        finally:
            js.delete_stream(conn, subject)


def test_credentials_in_an_s3_url_are_never_printed(s3: str) -> None:
    """Keys given in the URL's user-info (``s3://key:secret@bucket``) stay out of every
    message and of the error's ``url``: a bucket that does not exist, an option pyarrow does
    not know."""
    for url in (f"s3://test:hunter2/x@nobucket/p?{s3}", f"s3://test:hunter2@rec/p?{s3}&bogus=1"):
        with pytest.raises(natsbook.errors.DatasetError) as err:
            PartWriter(url, stream="S")
        assert "hunter2" not in str(err.value) and "hunter2" not in err.value.url
        assert "***@" in str(err.value)
