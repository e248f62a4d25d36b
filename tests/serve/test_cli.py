"""``jfsim serve``'s own options: a bad one is one line on stderr and exit status 2."""

from __future__ import annotations

import socket
import subprocess

import pytest
from serve_helpers import JFSIM


@pytest.fixture
def busy_port():
    """A loopback port something else listens on."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--detector", "JF3M"], "unknown detector 'JF3M'; choose one of JF1M"),
        (["--endpoint", "tcp://127.0.0.1:0"], "give a fixed port"),
        (["--http", "127.0.0.1:99999"], "expected HOST:PORT with a port in 0..65535"),
        (["--http", "127.0.0.1:{busy}"], "cannot listen (Address already in use)"),
        (["--rate", "fast"], "rate 'fast': not understood"),
        (
            ["--http", "127.0.0.1:0", "--endpoint", "tcp://127.0.0.1:{busy}"],
            "--endpoint tcp://127.0.0.1:{busy}: cannot bind (Address already in use)",
        ),
    ],
    ids=["detector", "endpoint", "http", "busy", "rate", "busy-image-port"],
)
def test_bad_options_are_one_line_and_exit_2(args, message, busy_port):
    args = [arg.format(busy=busy_port) for arg in args]
    result = subprocess.run(
        [str(JFSIM), "serve", *args], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 2
    message = message.format(busy=busy_port)
    assert result.stderr.startswith("jfsim serve: error: ") and message in result.stderr
    assert result.stderr.count("\n") == 1
