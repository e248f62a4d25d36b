"""The broker's state as the client sees it (``BrokerStatus.state``), with its transitions.

Inactive → ``/initialize`` → Idle → ``/start`` → Busy (pool rendered, writers awaited) →
Measuring → Idle. ``/cancel`` ends a measurement early; ``/deactivate`` goes back to
Inactive; a failure goes to Error with a message until the next ``/initialize``. Commands
check and change the state in one step, so two ``/start`` requests can never both pass.
"""

from __future__ import annotations

import enum
import threading
import time
from collections.abc import Callable, Collection

from jfsim.serve.errors import WrongState

__all__ = ["ACTIVE_STATES", "BrokerState", "StateMachine"]


class BrokerState(str, enum.Enum):
    """The values of ``BrokerStatus.state`` (jfjoch-client)."""

    INACTIVE = "Inactive"
    IDLE = "Idle"
    BUSY = "Busy"
    MEASURING = "Measuring"
    PEDESTAL = "Pedestal"
    ERROR = "Error"


#: States in which an operation is under way (``/wait_till_done`` waits them out).
ACTIVE_STATES = frozenset({BrokerState.BUSY, BrokerState.MEASURING, BrokerState.PEDESTAL})


class StateMachine:
    """The current state plus the message shown beside it; thread-safe, waitable."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._state = BrokerState.INACTIVE
        self._message: str | None = None
        self._severity = "error"

    @property
    def state(self) -> BrokerState:
        return self._state

    def snapshot(self) -> tuple[BrokerState, str | None, str]:
        """(state, message, message severity) read together."""
        with self._changed:
            return self._state, self._message, self._severity

    def move(self, state: BrokerState, message: str | None = None, severity: str = "error") -> None:
        """Enter ``state`` (with a message for Error, or a warning) and wake every waiter."""
        with self._changed:
            self._state = state
            self._message = message
            self._severity = severity
            self._changed.notify_all()

    def transition(
        self, allowed: Collection[BrokerState], new_state: BrokerState, command: str
    ) -> BrokerState:
        """Check that the state is one of ``allowed`` and enter ``new_state`` atomically.

        Returns the state left. Raises ``WrongState`` (HTTP 500, ``WrongDAQState``) otherwise.
        """
        with self._changed:
            old = self._state
            if old not in allowed:
                raise _refusal(old, allowed, command)
            self._state = new_state
            self._message = None
            self._changed.notify_all()
            return old

    def require(self, allowed: Collection[BrokerState], command: str) -> None:
        """Raise ``WrongState`` unless the state is one of ``allowed``."""
        with self._changed:
            if self._state not in allowed:
                raise _refusal(self._state, allowed, command)

    def wait_until(
        self, done: Callable[[BrokerState], bool], timeout_s: float | None
    ) -> BrokerState | None:
        """Wait until ``done(state)`` holds (``timeout_s`` None: no limit); the state then,
        or None at the timeout."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        with self._changed:
            while not done(self._state):
                if deadline is None:
                    self._changed.wait()
                    continue
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._changed.wait(remaining)
            return self._state


def _refusal(state: BrokerState, allowed: Collection[BrokerState], command: str) -> WrongState:
    names = " or ".join(sorted(a.value for a in allowed))
    hint = ""
    if state in (BrokerState.MEASURING, BrokerState.BUSY):
        hint = " (wait with /wait_till_done or stop it with /cancel)"
    elif state in (BrokerState.INACTIVE, BrokerState.ERROR):
        hint = " (POST /initialize first)"
    return WrongState(f"{command}: the detector is {state.value}; {command} needs {names}{hint}")
