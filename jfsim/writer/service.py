"""The writer's service sockets: HTTP status/cancel, finalized-file PUB, republish PUSH.

All three are optional, as in jfjoch_writer (``-H``, ``-f``, ``-r``), and bind the loopback
interface unless the user names another host (``--bind-host``): the HTTP ``POST /cancel`` has
no authentication. The HTTP server never touches HDF5: a cancel request is handed to the
receive loop, which closes the files and then answers. It serves from a small fixed pool of
threads, and a connection that sends nothing for ``HTTP_IDLE_TIMEOUT_S`` is closed, so idle
clients cannot pile up threads.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import zmq

from jfsim.writer.errors import WriterError
from jfsim.writer.series_writer import ClosedFile

log = logging.getLogger(__name__)

#: How long republishing waits for a puller on start/end messages (jfjoch_writer: 100 ms).
CONTROL_SEND_TIMEOUT_MS = 100
#: How long an HTTP cancel waits for the receive loop to close the files.
CANCEL_WAIT_S = 30.0
#: An HTTP connection that sends no (complete) request for this long is closed.
HTTP_IDLE_TIMEOUT_S = 10.0
#: Threads serving HTTP requests; connections beyond these are refused (closed at once).
HTTP_WORKERS = 4
#: The interface every listening socket binds unless the user names another.
LOOPBACK = "127.0.0.1"


def bind_error(option: str, host: str, port: int, error: Exception) -> WriterError:
    """One line naming the option, the address and what to do."""
    reason = (getattr(error, "strerror", None) or str(error)).split(" (addr=")[0]
    return WriterError(
        f"{option} {port}: cannot listen on {host}:{port} ({reason}); choose a free port "
        f"(0 = any free port) or another --bind-host"
    )


def zmq_bind(socket: zmq.Socket, host: str, port: int, option: str) -> str:
    """Bind ``tcp://host:port`` (port 0 = any free port); returns the bound endpoint.

    On failure the socket is closed (an unclosed socket would hang ``Context.term``) and a
    ``WriterError`` names ``option``.
    """
    try:
        socket.bind(f"tcp://{host}:{port if port else '*'}")
    except zmq.ZMQError as error:
        socket.close(linger=0)
        raise bind_error(option, host, port, error) from None
    return socket.getsockopt_string(zmq.LAST_ENDPOINT)


def file_notification(closed: ClosedFile) -> dict[str, Any]:
    """The finalized-file JSON of jfjoch_writer (stream.md §8) for one closed file."""
    start = closed.start_fields
    notification: dict[str, Any] = {
        "filename": closed.relative_name,
        "nimages": closed.nimages,
        "file_number": closed.file_number,
        "sample_name": start.get("sample_name", ""),
        "run_name": start.get("series_unique_id", ""),
        "run_number": start.get("series_id", 0),
        "beam_x_pxl": start.get("beam_center_x"),
        "beam_y_pxl": start.get("beam_center_y"),
        "detector_distance_m": start.get("detector_distance"),
        "detector_height_pxl": start.get("image_size_y"),
        "detector_width_pxl": start.get("image_size_x"),
        "incident_energy_eV": start.get("incident_energy"),
        "pixel_size_m": start.get("pixel_size_x"),
        "saturation": start.get("saturation_value"),
        "underload": start.get("error_value"),
        "image_time_s": start.get("frame_time"),
    }
    if start.get("experiment_group"):
        notification["experiment_group"] = start["experiment_group"]
    user_data = start.get("user_data")
    if isinstance(user_data, Mapping) and "user" in user_data:
        user = user_data["user"]
        if isinstance(user, str):
            try:
                user = json.loads(user)
            except ValueError:
                pass
        notification["user_data"] = user
    if isinstance(start.get("space_group_number"), int):
        notification["space_group_number"] = start["space_group_number"]
    if isinstance(start.get("unit_cell"), Mapping):
        notification["unit_cell"] = dict(start["unit_cell"])
    return notification


class FileNotifier:
    """PUB socket that announces every closed data file as one JSON text message."""

    def __init__(self, context: zmq.Context, host: str, port: int) -> None:
        self.socket = context.socket(zmq.PUB)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.endpoint = zmq_bind(self.socket, host, port, "-f/--zmq_file_port")

    def publish(self, closed: ClosedFile) -> None:
        text = json.dumps(file_notification(closed), default=str)
        try:
            self.socket.send_string(text, zmq.NOBLOCK)
        except zmq.Again:
            log.warning("file notification for %s dropped (PUB queue full)", closed.relative_name)

    def close(self) -> None:
        self.socket.close()


class Republisher:
    """PUSH socket re-emitting every received frame: images never block, start/end wait
    up to 100 ms for a puller and are then dropped (jfjoch_writer's rule)."""

    def __init__(self, context: zmq.Context, host: str, port: int, watermark: int) -> None:
        self.socket = context.socket(zmq.PUSH)
        self.socket.setsockopt(zmq.SNDHWM, watermark)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.endpoint = zmq_bind(self.socket, host, port, "-r/--zmq_repub_port")
        self.dropped = 0
        self.sent = 0

    def forward(self, frame: bytes | memoryview, *, control: bool) -> None:
        try:
            if control:
                if self.socket.poll(CONTROL_SEND_TIMEOUT_MS, zmq.POLLOUT):
                    self.socket.send(frame, zmq.NOBLOCK, copy=False)
                else:
                    raise zmq.Again()
            else:
                self.socket.send(frame, zmq.NOBLOCK, copy=False)
            self.sent += 1
        except zmq.Again:
            self.dropped += 1

    def close(self) -> None:
        self.socket.close()


class _PooledHTTPServer(HTTPServer):
    """An HTTP server whose requests run on a fixed pool of threads.

    A connection that arrives while every worker is busy is closed at once (the client sees
    a reset and may retry) instead of getting a thread of its own.
    """

    daemon_threads = True
    request_queue_size = 64  # a burst is accepted (and, past the workers, closed) at once

    def __init__(self, address: tuple[str, int], handler: type, workers: int) -> None:
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="jfsim-write-http")
        self._free = threading.BoundedSemaphore(workers)
        self.refused = 0
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._free.acquire(blocking=False):
            self.refused += 1
            log.debug("http: every worker busy, connection from %s closed", client_address)
            self.shutdown_request(request)
            return
        self._pool.submit(self._serve, request, client_address)

    def _serve(self, request: Any, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:  # the handler's own errors: reported like socketserver does
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)
            self._free.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("http: error serving %s", client_address, exc_info=True)

    def server_close(self) -> None:
        super().server_close()
        self._pool.shutdown(wait=False, cancel_futures=True)


class StatusServer:
    """``GET /status`` → JSON state; ``POST /cancel`` → close the open series now."""

    def __init__(
        self,
        host: str,
        port: int,
        status: Callable[[], dict[str, Any]],
        cancel: Callable[[float], dict[str, Any]],
        *,
        idle_timeout_s: float = HTTP_IDLE_TIMEOUT_S,
        workers: int = HTTP_WORKERS,
    ) -> None:
        status_provider, cancel_handler = status, cancel

        class Handler(BaseHTTPRequestHandler):
            timeout = idle_timeout_s  # socket timeout: an idle connection is dropped

            def _reply(self, code: int, body: dict[str, Any]) -> None:
                data = json.dumps(body, default=str).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                if self.path.rstrip("/") == "/status":
                    self._reply(200, status_provider())
                else:
                    self._reply(404, {"error": f"unknown path {self.path}; use /status"})

            def do_POST(self) -> None:
                if self.path.rstrip("/") == "/cancel":
                    self._reply(200, cancel_handler(CANCEL_WAIT_S))
                else:
                    self._reply(404, {"error": f"unknown path {self.path}; use /cancel"})

            def log_message(self, format: str, *args: Any) -> None:
                log.debug("http: " + format, *args)

        bind_host = "" if host in ("*", "0.0.0.0") else host
        family = socket.AF_INET6 if ":" in bind_host else socket.AF_INET
        server_class = type("StatusHTTPServer", (_PooledHTTPServer,), {"address_family": family})
        try:
            self.server = server_class((bind_host, port), Handler, workers)
        except (OSError, OverflowError) as error:
            raise bind_error("-H/--http_port", host, port, error) from None
        self.port = int(self.server.server_address[1])
        self.host = host
        self._thread = threading.Thread(
            target=self.server.serve_forever, name="jfsim-write-http", daemon=True
        )
        self._thread.start()

    @property
    def refused_connections(self) -> int:
        return self.server.refused

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)
