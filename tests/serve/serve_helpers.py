"""Real subprocesses for the broker tests: ``jfsim serve``, ``jfsim write`` and a PULL socket.

``jfsim serve`` is started with ``--http 127.0.0.1:0``; its first stderr line names the port
(a handshake, not a sleep). Tests drive it only through ``jfjoch_client.DefaultApi``.
"""

from __future__ import annotations

import queue
import re
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import jfjoch_client
import zmq

JFSIM = Path(sys.executable).with_name("jfsim")
STARTUP_TIMEOUT_S = 60.0
EXIT_TIMEOUT_S = 60.0
RECEIVE_TIMEOUT_S = 30.0
_LISTENING = re.compile(r"broker API on (http://\S+)")


class ServeProcess:
    """``jfsim serve ARGS`` on a free HTTP port; ``api`` is a ``DefaultApi`` bound to it."""

    def __init__(self, *args: str) -> None:
        command = [str(JFSIM), "serve", "--http", "127.0.0.1:0", *args]
        self.process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        self.stderr_lines: list[str] = []
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._reader.start()
        self.url = self._wait_listening()
        configuration = jfjoch_client.Configuration(host=self.url)
        self.api = jfjoch_client.DefaultApi(jfjoch_client.ApiClient(configuration))

    def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.stderr_lines.append(line)
            self._lines.put(line)
        self._lines.put(None)

    def _wait_listening(self) -> str:
        while True:
            try:
                line = self._lines.get(timeout=STARTUP_TIMEOUT_S)
            except queue.Empty:
                self.process.kill()
                raise AssertionError("jfsim serve did not report its address in time") from None
            if line is None:
                self.process.wait(timeout=EXIT_TIMEOUT_S)
                raise AssertionError(f"jfsim serve exited: {''.join(self.stderr_lines)}")
            match = _LISTENING.search(line)
            if match:
                return match.group(1)

    def stop(self, signum: int = signal.SIGTERM) -> tuple[int, str, str]:
        """Send ``signum`` and wait: (exit status, stdout, stderr)."""
        if self.process.poll() is None:
            self.process.send_signal(signum)
        stdout, _ = self.process.communicate(timeout=EXIT_TIMEOUT_S)
        self._reader.join(timeout=EXIT_TIMEOUT_S)
        return self.process.returncode, stdout, "".join(self.stderr_lines)


class WriterProcess:
    """``jfsim write -R ROOT -f FILE_PORT ENDPOINT``: the reference writer as a service."""

    def __init__(self, root: Path, endpoint: str, file_port: int, *args: str) -> None:
        root.mkdir(parents=True, exist_ok=True)
        command = [str(JFSIM), "write", "-R", str(root), "-f", str(file_port), *args, endpoint]
        self.process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )

    def stop(self) -> tuple[int, str, str]:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        stdout, stderr = self.process.communicate(timeout=EXIT_TIMEOUT_S)
        return self.process.returncode, stdout, stderr


class Puller:
    """A PULL socket connected to the image endpoint, in place of a writer."""

    def __init__(self, endpoint: str) -> None:
        self.context = zmq.Context()
        self.socket = self.context.socket(zmq.PULL)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.connect(endpoint)

    def receive(self, timeout_s: float = RECEIVE_TIMEOUT_S) -> bytes:
        if not self.socket.poll(int(timeout_s * 1000)):
            raise AssertionError(f"nothing received within {timeout_s} s")
        return self.socket.recv()

    def close(self) -> None:
        self.socket.close()
        self.context.term()


def error_message(error: jfjoch_client.ApiException) -> jfjoch_client.ErrorMessage:
    """The ``ErrorMessage`` body of a refused request."""
    assert error.body, f"HTTP {error.status} without a body"
    message = jfjoch_client.ErrorMessage.from_json(error.body)
    assert message is not None
    return message


def free_ports(count: int) -> list[int]:
    """``count`` distinct loopback TCP ports that were free a moment ago (found together)."""
    probes = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for probe in probes:
            probe.bind(("127.0.0.1", 0))
        return [int(probe.getsockname()[1]) for probe in probes]
    finally:
        for probe in probes:
            probe.close()
