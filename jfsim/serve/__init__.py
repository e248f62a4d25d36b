"""``jfsim serve``: jfjoch_broker's REST API, driving ``jfsim stream``'s machinery.

A beamline control system drives a detector through jfjoch_broker's HTTP API with the
``jfjoch-client`` package. ``BrokerService`` answers the same API: its state machine
(``state``), the ``/config`` settings (``settings``), the image buffer (``image_buffer``) and
one ``Collection`` per ``/start``, which renders the experiment the ``DatasetSettings``
describe and streams it with ``jfsim.stream.Streamer``. ``create_app`` puts it on HTTP;
``run_server`` serves it with uvicorn. Bodies in and out are the client package's models.
"""

from __future__ import annotations

from jfsim.serve.app import create_app
from jfsim.serve.collection import Collection, StreamOptions
from jfsim.serve.errors import BrokerError, ServeOptionError
from jfsim.serve.server import bind_http, parse_http_address, run_server
from jfsim.serve.service import BrokerService, ServeConfig
from jfsim.serve.state import BrokerState

__all__ = [
    "BrokerError",
    "BrokerService",
    "BrokerState",
    "Collection",
    "ServeConfig",
    "ServeOptionError",
    "StreamOptions",
    "bind_http",
    "create_app",
    "parse_http_address",
    "run_server",
]
