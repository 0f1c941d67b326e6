"""Operating a NATS system: server monitoring as DataFrames (over HTTP, or through the system
account for every server of a cluster) and NATS services (the micro protocol).

Importing this package gives ``Connection`` its ``services()`` / ``add_service()`` methods
through the client layer's method table.
"""

from __future__ import annotations

from ..client._methods import provide as _provide
from ._monitor import (
    MissingServersWarning,
    Monitor,
    MonitorError,
    SystemMonitor,
    monitor,
    parse_duration,
)
from ._services import Endpoint, Service, add_service, services

__all__ = [
    "Endpoint",
    "MissingServersWarning",
    "Monitor",
    "MonitorError",
    "Service",
    "SystemMonitor",
    "add_service",
    "monitor",
    "parse_duration",
    "services",
]

_provide(services=services, add_service=add_service)
