"""A telemetry simulator: something real to explore in every notebook.

It publishes IoT readings, answers requests and runs a worker pool, all on one NATS connection
and a background thread::

    telemetry.<site>.<device>   JSON readings: device, site, seq, ts, temperature, humidity,
                                battery, status (about 1 in 100 is an anomaly: a spike or a
                                stuck sensor reading 85.0; about 1 in 200 is malformed: truncated
                                JSON, key=value text or binary junk). Injected readings carry a
                                ``Sim-Injected: anomaly|malformed`` header: the ground truth.
    svc.time / svc.echo /       request/reply endpoints of the NATS micro service "svc"
    svc.lookup / svc.stats      (``responders`` instances, 8 by default, each endpoint in the
                                queue group "svc", so requests are answered concurrently) with
                                a realistic, variable latency; svc.lookup answers a 404 service
                                error for an unknown device. Each instance answers the service
                                API ($SRV.PING/INFO/STATS): ``conn.services()``, the
                                dashboard's Services tab and ``nats micro ls`` list them with
                                their counters.
    svc.ping                    answered by every instance (no queue group): a scatter-gather
                                target, ``%nats_req svc.ping --replies 5``.
    jobs.<kind>                 jobs published at ``job_rate``; a pool of workers (queue group
                                "workers") takes each one, publishes ``results.<kind>`` and
                                replies when the job was sent as a request.
    <binary>.msgpack.<site>.<device>, <binary>.proto.<site>.<device>
                                with ``binary="binary"``: each reading again as MessagePack
                                and as Protobuf (see ``natsbook.lab._binary``).

>>> from natsbook.lab.simulator import Simulator
>>> sim = Simulator(conn, devices=6, rate=2).start()   # 12 readings/s
>>> sim.stats["published"]
>>> sim.stop()
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from ..client import Connection, Subscription, connect
from ..errors import BadInputError, ConnectionClosedError, NatsbookError, ServiceError
from ..ops import Service
from ..wire import Msg, check_publish
from ._binary import BinaryTelemetry

__all__ = ["DEFAULT_SITES", "SERVICES", "SERVICE_NAME", "STATUSES", "Simulator"]

#: Sites the devices are spread over, round robin.
DEFAULT_SITES: tuple[str, ...] = ("berlin", "lisbon", "oslo")
#: Every value a reading's ``status`` field can take.
STATUSES: tuple[str, ...] = ("ok", "low_battery", "error")
#: The request/reply endpoints under ``svc.`` (each in the queue group "svc").
SERVICES: tuple[str, ...] = ("time", "echo", "lookup", "stats")
#: The micro service (NATS service API) the endpoints belong to, and its version.
SERVICE_NAME = "svc"
SERVICE_VERSION = "1.0.0"
JOB_KINDS: tuple[str, ...] = ("resize", "report", "backup")
_SITE_OFFSET = {"berlin": 0.0, "lisbon": 3.0, "oslo": -4.0}
_MODELS = ("TH-100", "TH-200", "ENV-3")


@dataclass(slots=True)
class _Device:
    """The evolving state of one simulated sensor."""

    name: str
    site: str
    subject: str
    model: str
    firmware: str
    base_temp: float
    base_hum: float
    phase: float
    battery: float
    drain: float
    seq: int = 0
    noise: float = 0.0


class Simulator:
    """Publish telemetry, serve ``svc.*`` and run a ``jobs.>`` worker pool in the background.

    Args:
        conn: a Connection to publish on, a server URL, or None (``$NATS_URL``, else the
            default). A connection the simulator opened itself is closed by ``stop()``.
        devices: number of simulated sensors.
        rate: readings per second per device.
        sites: site names (subject tokens) the devices are spread over.
        anomaly_rate: fraction of readings that are anomalies.
        malformed_rate: fraction of readings whose payload is not valid JSON.
        services: run the micro service ``svc``: ``svc.time``, ``svc.echo``, ``svc.lookup``,
            ``svc.stats`` and ``svc.ping``.
        responders: instances of the service; each endpoint's queue group has one member per
            instance, each answering on its own thread: a load test
            (``%nats_req svc.echo --count 10000``) measures the client, not one busy
            responder.
        workers: size of the ``jobs.>`` worker pool (queue group ``workers``); 0 for none.
        job_rate: jobs published per second on ``jobs.<kind>`` (0: none; workers still
            answer jobs that others send).
        latency: scale of the services' and workers' simulated processing time (1.0: a few
            milliseconds with an occasional slow answer; 0: instant).
        prefix: first subject token of the readings.
        seed: seed for reproducible readings.
        inject_every: at least one anomaly and one malformed reading every this many seconds
            (0: only the random rates), so that a capture of a few seconds always holds
            some to find.
        binary: first subject token of the binary-telemetry family (each reading also as
            MessagePack and Protobuf), or None for none.
    """

    def __init__(self, conn: Connection | str | None = None, *, devices: int = 6,
                 rate: float = 1.0, sites: Sequence[str] = DEFAULT_SITES,
                 anomaly_rate: float = 0.01, malformed_rate: float = 0.005,
                 services: bool = True, responders: int = 8, workers: int = 3,
                 job_rate: float = 0.5,
                 latency: float = 1.0, prefix: str = "telemetry",
                 seed: int | None = None, inject_every: float = 0.0,
                 binary: str | None = None) -> None:
        if not isinstance(devices, int) or devices < 0:
            raise BadInputError(f"devices={devices!r} must be an int >= 0")
        if rate <= 0 or not math.isfinite(rate):
            raise BadInputError(f"rate={rate!r} must be > 0 readings per second per device")
        for name, value in (("anomaly_rate", anomaly_rate), ("malformed_rate", malformed_rate)):
            if not 0.0 <= value <= 1.0:
                raise BadInputError(f"{name}={value!r} must be a fraction between 0 and 1")
        if anomaly_rate + malformed_rate > 1.0:
            raise BadInputError("anomaly_rate + malformed_rate must not exceed 1")
        if workers < 0 or job_rate < 0 or latency < 0 or not inject_every >= 0:
            raise BadInputError("workers, job_rate, latency and inject_every must be >= 0")
        if not isinstance(responders, int) or responders < 1:
            raise BadInputError(f"responders={responders!r} must be an int >= 1 (members of "
                                "each service's queue group)")
        if not sites:
            raise BadInputError("sites must name at least one site")
        if binary is not None:
            check_publish(f"{binary}.msgpack")
        self._binary = BinaryTelemetry(binary) if binary else None
        self._binary_out: list[tuple[str, bytes]] = []
        self._conn_arg = conn
        self.conn: Connection | None = conn if isinstance(conn, Connection) else None
        self._owns_conn = not isinstance(conn, Connection)
        self.rate = float(rate)
        self.anomaly_rate = anomaly_rate
        self.malformed_rate = malformed_rate
        self.services = services
        self.responders = responders
        self._busy = 0
        self.workers = workers
        self.job_rate = job_rate
        self.latency = latency
        self.prefix = prefix
        self.seed = seed
        self.inject_every = float(inject_every)
        # When the next forced anomaly / malformed reading is due (monotonic seconds).
        self._inject_due: dict[str, float] = {}
        self._rng = random.Random(seed)
        # Services and workers run on their own dispatcher threads: their own generators.
        self._svc_rng = random.Random(None if seed is None else seed + 1)
        self.devices = [self._make_device(i, list(sites)) for i in range(devices)]
        self._by_name = {d.name: d for d in self.devices}
        self._subs: list[Subscription] = []
        #: The running instances of the micro service ``svc`` (empty when stopped).
        self.instances: list[Service] = []
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._started_at: float | None = None
        self._job_seq = 0
        self._stats: dict[str, Any] = {}
        self._reset_stats()

    # -- model ---------------------------------------------------------------------------------
    def _make_device(self, i: int, sites: list[str]) -> _Device:
        rng = self._rng
        site = sites[i % len(sites)]
        name = f"th-{i + 1:03d}"
        return _Device(
            name=name, site=site, subject=f"{self.prefix}.{site}.{name}",
            model=rng.choice(_MODELS), firmware=f"1.{rng.randint(2, 9)}.{rng.randint(0, 20)}",
            base_temp=rng.uniform(19.0, 24.0) + _SITE_OFFSET.get(site, 0.0),
            base_hum=rng.uniform(35.0, 55.0), phase=rng.uniform(0, 2 * math.pi),
            battery=rng.uniform(55.0, 100.0), drain=rng.uniform(0.01, 0.05),
        )

    def reading(self, dev: _Device, now: float | None = None,
                force: str | None = None) -> tuple[bytes, str | None]:
        """Advance `dev` by one reading: (payload, injected kind or None); `force`
        ("anomaly" or "malformed") injects that kind whatever the dice say."""
        rng = self._rng
        dev.seq += 1
        dev.noise = 0.8 * dev.noise + rng.gauss(0.0, 0.15)
        # A slow daily-like cycle compressed into ~10 minutes of readings at 1 Hz.
        cycle = math.sin(2 * math.pi * dev.seq / 600.0 + dev.phase)
        temp = dev.base_temp + 1.5 * cycle + dev.noise
        hum = dev.base_hum - 2.0 * cycle + rng.gauss(0.0, 0.8)
        dev.battery -= dev.drain
        if dev.battery < 5.0:  # someone swapped the battery
            dev.battery = 100.0
        status = "ok" if dev.battery >= 20.0 else "low_battery"
        kind: str | None = None
        roll = rng.random()
        if force == "anomaly":
            roll = 0.0
        elif force == "malformed":
            roll = self.anomaly_rate + self.malformed_rate * rng.random()
        if roll < self.anomaly_rate or force == "anomaly":
            kind = "anomaly"
            if rng.random() < 0.25:
                temp, status = 85.0, "error"  # a DS18B20 reporting its power-on value
            else:
                temp += rng.choice((-1, 1)) * rng.uniform(12.0, 25.0)
        elif roll < self.anomaly_rate + self.malformed_rate or force == "malformed":
            kind = "malformed"
        body = {
            "device": dev.name, "site": dev.site, "seq": dev.seq,
            # Microseconds: a reading's clock rounded to the millisecond can be up to 0.5 ms
            # later than its send time, more than a local delivery takes (negative latency).
            "ts": round(now if now is not None else time.time(), 6),
            "temperature": round(temp, 2), "humidity": round(min(max(hum, 0.0), 100.0), 1),
            "battery": round(dev.battery, 1), "status": status,
        }
        payload = orjson.dumps(body)
        if self._binary is not None:  # a DS18B20's raw reading: 1/16 degree, 2 bytes
            raw = (int(temp * 16) & 0xFFFF).to_bytes(2, "big")
            self._binary_out = self._binary.payloads(body, raw, kind == "malformed")
        if kind == "malformed":
            style = rng.randrange(3)
            if style == 0:
                payload = payload[: len(payload) // 2]
            elif style == 1:
                payload = (f"device={dev.name};temperature={body['temperature']};"
                           f"humidity={body['humidity']}").encode()
            else:
                payload = b"\x00\xff\xfe" + payload[:8]
        return payload, kind

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> Simulator:
        """Connect if needed, register services and workers, start publishing.

        Returns once the subscriptions are registered with the server and the publishing
        thread runs; raises what went wrong otherwise (nothing is left running then).
        """
        if self.running:
            return self
        self._stop.clear()
        try:
            if self.conn is None or self.conn.is_closed:
                if not self._owns_conn:
                    raise ConnectionClosedError("the connection given to Simulator is closed - "
                                                "pass an open one")
                url = self._conn_arg if isinstance(self._conn_arg, str) else None
                self.conn = connect(url, name="natsbook-simulator")
            conn = self.conn
            if self.services:
                # `responders` instances, as a service scaled out: each endpoint subscription
                # has its own dispatcher thread, so the queue group answers side by side.
                for i in range(self.responders):
                    svc = conn.add_service(
                        SERVICE_NAME, SERVICE_VERSION,
                        description="natsbook's simulated services: svc.time, svc.echo, "
                                    "svc.lookup, svc.stats; svc.ping answers from every "
                                    "instance",
                        metadata={"instance": f"{i + 1}/{self.responders}",
                                  "source": "natsbook simulator"})
                    self.instances.append(svc)
                    for name in SERVICES:
                        svc.endpoint(name, self._service(name), subject=f"svc.{name}",
                                     queue="svc")
                    svc.endpoint("ping", self._ping(svc, i + 1), subject="svc.ping",
                                 queue=None)
            for w in range(self.workers):
                self._subs.append(conn.subscribe("jobs.>", queue="workers", capture=False,
                                                 callback=self._worker(f"worker-{w + 1}")))
            conn.flush()
        except BaseException:
            self._cleanup()
            raise
        self._started_at = time.time()
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name="natsbook-simulator")
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop publishing, unsubscribe, and close the connection if the simulator opened it."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        self._thread = None
        self._cleanup()

    def _cleanup(self) -> None:
        conn = self.conn
        subs, self._subs = self._subs, []
        instances, self.instances = self.instances, []
        if conn is None or conn.is_closed:
            return
        for svc in instances:
            svc.stop()
        for sub in subs:
            try:
                sub.unsubscribe()
            except NatsbookError:
                pass
        if self._owns_conn:
            conn.close()
            self.conn = None
        else:
            try:
                conn.flush(2.0)
            except NatsbookError:
                pass

    @property
    def running(self) -> bool:
        """True while the publishing thread runs."""
        return self._thread is not None and self._thread.is_alive()

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the publishing loop -------------------------------------------------------------------
    def _run(self) -> None:
        conn = self.conn
        assert conn is not None
        period = 1.0 / self.rate
        n = max(len(self.devices), 1)
        t0 = time.monotonic()
        # Stagger devices across the period, as real sensors are never in lock step.
        due = [t0 + period * i / n for i in range(len(self.devices))]
        job_period = 1.0 / self.job_rate if self.job_rate > 0 else math.inf
        job_due = t0 + job_period / 2
        while not self._stop.is_set():
            now = time.monotonic()
            try:
                for i, dev in enumerate(self.devices):
                    if due[i] > now:
                        continue
                    self._publish_reading(conn, dev)
                    due[i] += period
                    if due[i] < now - 1.0:  # fell behind (paused, overloaded): do not burst
                        due[i] = now + period
                if job_due <= now:
                    self._publish_job(conn)
                    job_due = max(job_due + job_period, now)
            except ConnectionClosedError:
                return
            except NatsbookError as exc:  # reconnecting with a full buffer: skip, go on
                self._count("errors")
                self._stats["last_error"] = str(exc)
            nxt = min([*due, job_due]) if due or job_due < math.inf else now + 1.0
            self._stop.wait(max(nxt - time.monotonic(), 0.0))

    def _publish_reading(self, conn: Connection, dev: _Device) -> None:
        force = None
        if self.inject_every > 0:
            now = time.monotonic()
            due = self._inject_due
            if not due:  # the first ones come soon after the start, then one per period
                due.update(anomaly=now + self.inject_every / 3,
                           malformed=now + 2 * self.inject_every / 3)
            force = next((k for k in ("anomaly", "malformed") if due[k] <= now), None)
        payload, kind = self.reading(dev, force=force)
        if kind and self.inject_every > 0:
            self._inject_due[kind] = time.monotonic() + self.inject_every
        headers = {"Sim-Injected": kind} if kind else None
        conn.publish(dev.subject, payload, headers=headers)
        for subject, data in self._binary_out:
            conn.publish(subject, data, headers=headers)
        self._binary_out = []
        self._count("published")
        if kind:
            self._count("anomalies" if kind == "anomaly" else "malformed")

    def _publish_job(self, conn: Connection) -> None:
        self._job_seq += 1
        kind = self._rng.choice(JOB_KINDS)
        conn.publish(f"jobs.{kind}", {"id": self._job_seq, "kind": kind,
                                      "size": self._rng.randint(1, 100)})
        self._count("jobs_published")

    # -- services and workers ------------------------------------------------------------------
    def _delay(self, median_ms: float, slow_p: float = 0.0, slow_ms: float = 0.0) -> None:
        if self.latency <= 0:
            return
        rng = self._svc_rng
        ms = rng.lognormvariate(math.log(median_ms), 0.5)
        if slow_p and rng.random() < slow_p:
            ms += rng.uniform(0.5, 1.5) * slow_ms
        time.sleep(ms * self.latency / 1000.0)

    def _service(self, name: str) -> Any:
        """The endpoint handler: its return value is the reply; a ServiceError it raises is
        the error reply (Nats-Service-Error headers) and counts in the instance's STATS."""
        def handle(msg: Msg) -> Any:
            self._count_service(name)
            self._enter()
            try:
                return self._answer(name, msg)
            except LookupError as exc:
                raise ServiceError(msg.subject, 404, str(exc)) from None
            finally:
                self._leave()
        return handle

    def _ping(self, svc: Service, instance: int) -> Any:
        def handle(msg: Msg) -> Any:
            self._count_service("ping")
            self._delay(0.3)
            return {"service": svc.name, "id": svc.id, "instance": instance,
                    "of": self.responders,
                    "uptime_s": round(time.time() - svc.started.timestamp(), 3)}
        return handle

    def _answer(self, name: str, msg: Msg) -> Any:
        if name == "time":
            self._delay(1.0)
            now = time.time()
            return {"epoch": round(now, 6),
                    "iso": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now))
                    + f".{int(now % 1 * 1000):03d}Z"}
        if name == "echo":
            self._delay(0.5)
            return Msg(msg.subject, msg.data, headers=msg.headers)
        if name == "lookup":
            self._delay(4.0, slow_p=0.05, slow_ms=60.0)
            key = msg.data.decode("utf-8", "replace").strip().strip('"')
            dev = self._by_name.get(key)
            if dev is None:
                raise LookupError(f"unknown device {key!r} - try one of "
                                  f"{', '.join(list(self._by_name)[:3])}")
            return {"device": dev.name, "site": dev.site, "model": dev.model,
                    "firmware": dev.firmware, "subject": dev.subject}
        self._delay(2.0)
        return self.stats

    def _worker(self, worker: str) -> Any:
        def handle(msg: Msg) -> None:
            conn = self.conn
            if conn is None:
                return
            start = time.perf_counter()
            self._delay(8.0, slow_p=0.1, slow_ms=40.0)
            try:
                job = orjson.loads(msg.data)
            except orjson.JSONDecodeError:
                job = msg.data.decode("utf-8", "replace")
            kind = msg.subject.split(".", 1)[1] if "." in msg.subject else msg.subject
            result = {"worker": worker, "subject": msg.subject, "job": job,
                      "took_ms": round((time.perf_counter() - start) * 1000, 2)}
            with self._lock:
                done = self._stats["jobs_done"]
                done[worker] = done.get(worker, 0) + 1
            if msg.reply:
                conn.publish(msg.reply, result)
            conn.publish(f"results.{kind}", result)
        return handle

    # -- statistics ----------------------------------------------------------------------------
    def _reset_stats(self) -> None:
        self._stats = {"published": 0, "anomalies": 0, "malformed": 0, "jobs_published": 0,
                       "jobs_done": {}, "requests": {}, "errors": 0, "busy_max": 0}

    def _count(self, key: str, n: int = 1) -> None:
        with self._lock:
            self._stats[key] += n

    def _count_service(self, name: str) -> None:
        with self._lock:
            req = self._stats["requests"]
            req[name] = req.get(name, 0) + 1

    def _enter(self) -> None:
        with self._lock:
            self._busy += 1
            self._stats["busy_max"] = max(self._stats["busy_max"], self._busy)

    def _leave(self) -> None:
        with self._lock:
            self._busy -= 1

    @property
    def stats(self) -> dict[str, Any]:
        """Counters: published, anomalies, malformed, jobs_published, jobs_done (per worker),
        requests (per service), errors, busy_max (most requests the services handled at
        once), responders (per service), devices, rate, uptime_s."""
        with self._lock:
            out = dict(self._stats)
            out["jobs_done"] = dict(out["jobs_done"])
            out["requests"] = dict(out["requests"])
        out["responders"] = self.responders if self.services else 0
        out["devices"] = len(self.devices)
        out["rate"] = self.rate
        out["uptime_s"] = round(time.time() - self._started_at, 3) if self._started_at else 0.0
        return out

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return (f"<Simulator {state} devices={len(self.devices)} rate={self.rate:g}/s "
                f"published={self._stats['published']}>")
