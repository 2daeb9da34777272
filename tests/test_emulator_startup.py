"""`loadgen emulator` start-up: an address it cannot listen on ends it at once (exit 3,
one line, no traceback), and its flags are checked before anything starts (exit 2)."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading

import pytest

from loadgen.emulator.s3 import S3Server


def _unassignable() -> str:
    """A TEST-NET address (RFC 5737) that is not one of this machine's: binding it fails."""
    for host in ("198.51.100.1", "203.0.113.1", "192.0.2.1"):
        try:
            with socket.socket() as s:
                s.bind((host, 0))
        except OSError:
            return host
    pytest.skip("every TEST-NET address is assigned on this machine")


def _emulator(*flags: str, timeout: float = 20) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "loadgen", "emulator", *flags],
                          capture_output=True, text=True, timeout=timeout)


def test_an_address_that_cannot_be_bound_exits_3_at_once_with_one_line():
    host = _unassignable()
    # it used to print "stopping", then hang on moto's S3 start (deaf to SIGINT/SIGTERM)
    r = _emulator("--host", host, "--port", "0")
    assert r.returncode == 3, r.stderr
    lines = r.stderr.strip().splitlines()
    assert lines == [f"loadgen emulator: cannot listen on {host}:0: Cannot assign requested address"], r.stderr
    assert r.stdout == ""


def test_s3_server_start_raises_instead_of_hanging():
    # moto's own start() waits forever for a bind that failed in its thread
    raised: list[BaseException] = []

    def start() -> None:
        try:
            S3Server(host=_unassignable()).start()
        except BaseException as e:  # noqa: BLE001 - the test reads what was raised
            raised.append(e)

    t = threading.Thread(target=start, daemon=True)
    t.start()
    t.join(20)
    assert not t.is_alive(), "S3Server.start() still waiting after 20 s"
    assert len(raised) == 1 and isinstance(raised[0], OSError), raised


@pytest.mark.parametrize("flags, message", [
    (["--port", "99999"], "argument --port: expected 0..65535, got '99999'"),
    (["--port", "-1"], "argument --port: expected 0..65535, got '-1'"),
    (["--port", "http"], "argument --port: expected 0..65535, got 'http'"),
    (["--region", "mars"], "argument --region: 'mars' is not an AWS Region name"),
])
def test_bad_flags_exit_2_before_anything_starts(flags, message):
    r = _emulator(*flags)
    assert r.returncode == 2, r.stderr
    assert message in r.stderr, r.stderr
    assert "Traceback" not in r.stderr and r.stdout == ""
