"""``natsbook lab`` and friends: the command line (:mod:`.cli`) and the telemetry simulator.

The simulator is imported on first use, so ``import natsbook`` does not load it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .simulator import Simulator

__all__ = ["Simulator"]


def __getattr__(name: str) -> Any:
    if name == "Simulator":
        from .simulator import Simulator

        return Simulator
    raise AttributeError(name)
