"""The refusals of the broker API: each carries the HTTP status jfjoch_broker answers with.

jfjoch_broker answers a request it cannot carry out with HTTP 500 and an ``ErrorMessage``
(``reason`` ``WrongDAQState`` when the state forbids it, ``Other`` otherwise); the waits
answer 502 (detector inactive) and 504 (timeout). jfsim also answers a body the models
reject with 400 and an ``ErrorMessage`` whose ``msg`` names the field.
"""

from __future__ import annotations

from jfsim.errors import JfsimError

__all__ = [
    "BadRequest",
    "BrokerError",
    "DetectorInactive",
    "NotEmulated",
    "NotFound",
    "ServeOptionError",
    "Unauthorized",
    "WaitTimeout",
    "WrongState",
]


class ServeOptionError(JfsimError):
    """An option of the service itself (address, endpoint, pool) cannot be used."""


class BrokerError(JfsimError):
    """A request the service refuses; ``status`` and ``reason`` go into the HTTP answer."""

    status = 500
    reason = "Other"

    def __init__(self, msg: str) -> None:
        super().__init__(msg)
        self.msg = msg


class BadRequest(BrokerError):
    """The body or a query parameter is invalid; the message names the field."""

    status = 400


class Unauthorized(BrokerError):
    """The dataset is protected by bearer tokens and the request carries none that fits."""

    status = 401


class NotFound(BrokerError):
    """The requested item (image, start message, statistics) does not exist (yet)."""

    status = 404


class WrongState(BrokerError):
    """The broker's state forbids the command (``/start`` while Measuring, …)."""

    reason = "WrongDAQState"


class NotEmulated(BrokerError):
    """An endpoint of the broker API that jfsim has no detector part for."""


class DetectorInactive(BrokerError):
    """A wait ended because the detector is Inactive (``/wait_till_done``: 502)."""

    status = 502


class WaitTimeout(BrokerError):
    """A wait reached its timeout (504); the operation goes on."""

    status = 504
