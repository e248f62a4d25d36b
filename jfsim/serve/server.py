"""Running the broker API: the Starlette app on a uvicorn server, on one bound TCP socket.

The socket is bound before the server starts, so a busy port is a one-line error and port
0 yields the real port at once. SIGINT/SIGTERM first stop a running series (its end message
is still sent), then uvicorn shuts down gracefully and the app's lifespan closes the service.
"""

from __future__ import annotations

import asyncio
import socket
from types import FrameType
from typing import Any

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from jfsim.serve.app import create_app
from jfsim.serve.errors import ServeOptionError
from jfsim.serve.service import BrokerService

__all__ = ["bind_http", "parse_http_address", "run_server"]

#: Requests still open this long after a shutdown signal are cut.
GRACEFUL_SHUTDOWN_S = 10
#: A connection that has not sent a whole request header this long after it opened (or
#: after its last answer) is closed: idle or trickling clients cannot hold sockets forever.
REQUEST_HEADER_TIMEOUT_S = 10.0
#: Connections served at once; beyond, requests are answered 503 at once.
MAX_CONNECTIONS = 1000


def parse_http_address(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:PORT`` for IPv6) or a bare ``PORT`` (on 127.0.0.1)."""
    host, colon, port_text = text.rpartition(":")
    if not colon:
        host, port_text = "127.0.0.1", text
    host = host.strip("[]") or "127.0.0.1"
    try:
        port = int(port_text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise ServeOptionError(
            f"--http {text!r}: expected HOST:PORT with a port in 0..65535, e.g. 127.0.0.1:5232"
        )
    return host, port


def bind_http(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (0 = any free port)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP (not 0) lets asyncio set TCP_NODELAY on accepted connections; without it a
    # response's header and body segments meet delayed ACKs (40 ms per request).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        raise ServeOptionError(
            f"--http {host}:{port}: cannot listen ({error.strerror}); choose another port "
            "or stop the program using it"
        ) from None
    sock.listen(128)
    return sock


class _HeaderDeadline(H11Protocol):
    """uvicorn's HTTP/1.1 protocol, closing a connection that sends no whole request header
    within ``REQUEST_HEADER_TIMEOUT_S``. uvicorn's keep-alive timeout is cancelled by any
    byte received, so a client trickling a header, or opening and sending nothing, kept its
    socket (and, by the thousand, the server's descriptors) forever."""

    _deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_deadline()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._arm_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        super().connection_lost(exc)

    def _arm_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        self._deadline = self.loop.call_later(REQUEST_HEADER_TIMEOUT_S, self._past_deadline)

    def _past_deadline(self) -> None:
        cycle: Any = self.cycle
        waiting_for_header = cycle is None or cycle.response_complete
        if waiting_for_header and not self.transport.is_closing():
            self.transport.close()


class _Server(uvicorn.Server):
    """uvicorn, stopping a running series before its own graceful shutdown."""

    def __init__(self, config: uvicorn.Config, service: BrokerService) -> None:
        super().__init__(config)
        self._service = service

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self._service.request_shutdown()
        super().handle_exit(sig, frame)


def run_server(service: BrokerService, sock: socket.socket) -> None:
    """Serve ``service`` on the bound ``sock`` until SIGINT/SIGTERM; closes the service."""
    config = uvicorn.Config(
        create_app(service),
        log_level="warning",
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        http=_HeaderDeadline,
        limit_concurrency=MAX_CONNECTIONS,
    )
    _Server(config, service).run(sockets=[sock])
