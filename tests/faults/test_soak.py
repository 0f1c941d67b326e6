"""Soak: a minute at a steady rate into a bounded store; memory stays flat, counters add up."""

from __future__ import annotations

import gc
import os
import time

import pytest

import natsbook
from natsbook import LocalServer

from .helpers import Publisher, wait_for

DURATION = float(os.environ.get("NATSBOOK_SOAK_SECONDS", "60"))
RATE = 1000.0
MAX_ROWS = 20_000


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS in /proc/self/status")


@pytest.mark.slow
@pytest.mark.timeout(DURATION + 90)
def test_soak_bounded_store_flat_memory(own_server: LocalServer, subject: str) -> None:
    conn = natsbook.connect(own_server.url, name="soak")
    pub: Publisher | None = None
    try:
        sub = conn.subscribe(subject, max_rows=MAX_ROWS)
        seen = [0]

        def count(msg: natsbook.Msg) -> None:
            seen[0] += 1

        cb_sub = conn.subscribe(subject, callback=count, capture=False)
        pub = Publisher(own_server.url, subject, rate=RATE)
        pub.start()

        start = time.monotonic()
        samples: list[tuple[float, float]] = []
        frames = 0
        while (elapsed := time.monotonic() - start) < DURATION:
            time.sleep(1.0)
            # A notebook would look at the capture now and then: exercise that path too.
            frame = sub.to_pandas(last=100)
            frames += len(frame) > 0
            del frame
            gc.collect()
            samples.append((elapsed, rss_mb()))
        pub.finish()
        sent = len(pub.accepted)
        pub = None
        conn.flush(10)
        wait_for(lambda: sub.stats.received == sent, timeout=10)
        assert cb_sub.wait_pending(10)

        st = sub.stats
        assert st.received == sent, "nothing lost on a healthy connection"
        assert st.received == st.stored + st.evicted
        assert st.stored <= MAX_ROWS + 8192  # the bound, plus at most one open batch
        assert st.evicted > 0
        cb = cb_sub.stats
        assert cb.received == sent
        assert cb.received == cb.delivered + cb.pending + cb.dropped
        assert cb.delivered == seen[0]
        assert conn.gaps().empty
        assert frames > 0

        # Memory: flat after warm-up (the store fills up to its bound in the first ~20 s).
        warm = [mb for t, mb in samples if t >= DURATION / 3]
        assert len(warm) >= 5
        half = len(warm) // 2
        first, second = warm[:half], warm[half:]
        growth = max(second) - max(first)
        print(f"RSS MB after warm-up: first half max {max(first):.1f}, second half max "
              f"{max(second):.1f}, growth {growth:.1f}; sent {sent}, evicted {st.evicted}")
        assert growth < 25.0, f"RSS kept growing after warm-up: {warm}"
    finally:
        if pub is not None:
            pub.abort()
        conn.close()
