"""Operating a NATS system: server monitoring as DataFrames (over HTTP, or through the system
account for every server of a cluster), NATS services (the micro protocol), message tracing
(ADR-41), JetStream advisories and system events, and health checks.

``Connection.services()`` / ``add_service()`` call these functions; they take any
:class:`natsbook.core.Link` (a Connection is one).
"""

from __future__ import annotations

from ._advisories import Advisories, advisories, typed_advisories
from ._checks import check
from ._monitor import (
    MissingServersWarning,
    Monitor,
    MonitorError,
    SystemMonitor,
    monitor,
    parse_duration,
)
from ._services import Endpoint, Service, add_service, services
from ._trace import trace, trace_edges, trace_rows, trace_subjects

__all__ = [
    "Advisories",
    "Endpoint",
    "MissingServersWarning",
    "Monitor",
    "MonitorError",
    "Service",
    "SystemMonitor",
    "add_service",
    "advisories",
    "check",
    "monitor",
    "parse_duration",
    "services",
    "trace",
    "trace_edges",
    "trace_rows",
    "trace_subjects",
    "typed_advisories",
]
