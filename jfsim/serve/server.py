"""Running the broker API: the Starlette app on a uvicorn server, on one bound TCP socket.

The socket is bound before the server starts, so a busy port is a one-line error and port
0 yields the real port at once. SIGINT/SIGTERM first stop a running series (its end message
is still sent), then uvicorn shuts down gracefully and the app's lifespan closes the service.
"""

from __future__ import annotations

import socket
from types import FrameType

import uvicorn

from jfsim.serve.app import create_app
from jfsim.serve.errors import ServeOptionError
from jfsim.serve.service import BrokerService

__all__ = ["bind_http", "parse_http_address", "run_server"]

#: Requests still open this long after a shutdown signal are cut.
GRACEFUL_SHUTDOWN_S = 10


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
    )
    _Server(config, service).run(sockets=[sock])
