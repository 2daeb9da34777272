"""`loadgen run --endpoint-url` against a separate `loadgen emulator` process.

loadgen cannot drive the clock of an endpoint it did not start, so such a run uses the
real clock; a warp scale with it is refused. And the endpoint may die under load: a
SIGKILLed and restarted emulator costs connection errors, never lost attempts.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from loadgen.commands.cli import main
from result_files import only_dir, read_results as load

HAIKU = "anthropic.claude-haiku-4-5-20251001-v1:0"

# time_scale = 60 is for the built-in emulator; a 2 s request timeout is ample for the
# "fast" latency preset in real time, but 33 ms of real time on a x60 warp clock.
SCENARIO = f"""
name = "external"
seed = 3
duration = "{{duration}}"

[target]
time_scale = 60
request_timeout = "2s"

[model]
id = "us.{HAIKU}"
max_tokens = 64
stream = true

[workload]
kind = "single"
prefix_tokens = 200
question_tokens = 12
output_tokens = 20

[arrivals]
kind = "constant"
rate = "{{rate}}"

[retry]
policy = "off"

[[arms]]
name = "a"
cache = false
"""


def write(tmp_path: Path, duration: str = "3s", rate: str = "2/s", extra: str = "") -> Path:
    p = tmp_path / "external.toml"
    p.write_text(textwrap.dedent(SCENARIO.format(duration=duration, rate=rate)) + extra)
    return p


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Emulator:
    """`loadgen emulator` as a separate process on a given port (0: any free one)."""

    def __init__(self, tmp_path: Path, port: int = 0):
        cfg = tmp_path / "emu.toml"
        cfg.write_text('latency = "fast"\n')
        self.proc = subprocess.Popen([sys.executable, "-m", "loadgen", "emulator", "--port", str(port),
                                      "--config", str(cfg)],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        assert "http://127.0.0.1:" in line, line + self.proc.stderr.read()
        self.url = line.strip().split()[-1]

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=10)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            self.proc.wait(timeout=10)


@pytest.mark.parametrize("url,says", [
    ("notaurl", "expected an http:// or https:// URL"),
    ("ftp://127.0.0.1:8787", "expected an http:// or https:// URL"),
    ("http://127.0.0.1:99999", "Port out of range"),
])
def test_a_bad_endpoint_url_is_bad_input_and_nothing_is_written(tmp_path, capsys, url, says):
    assert main(["run", str(write(tmp_path)), "--endpoint-url", url, "--out", str(tmp_path / "res")]) == 2
    err = [x for x in capsys.readouterr().err.splitlines() if x.strip()]
    assert len(err) == 1 and err[0].startswith("loadgen run: --endpoint-url: ") and says in err[0], err
    assert not (tmp_path / "res").exists()


def test_a_warp_scale_with_an_endpoint_is_refused(tmp_path, capsys):
    assert main(["run", str(write(tmp_path)), "--endpoint-url", "http://127.0.0.1:9", "--time-scale", "60",
                 "--out", str(tmp_path / "res")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("loadgen run: --time-scale: ") and "real clock" in err, err
    assert not (tmp_path / "res").exists()
    # both in the file: the file, line and key are named
    sc = write(tmp_path)
    sc.write_text(sc.read_text().replace("time_scale = 60", 'time_scale = 60\nendpoint_url = "http://127.0.0.1:9"'))
    assert main(["run", str(sc), "--out", str(tmp_path / "res")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"{sc}:7: target.time_scale: "), err
    assert not (tmp_path / "res").exists()


@pytest.mark.slow
def test_a_separate_emulator_is_run_on_the_real_clock(tmp_path, capsys):
    emu = Emulator(tmp_path)
    try:
        w0 = time.monotonic()
        rc = main(["run", str(write(tmp_path)), "--endpoint-url", emu.url, "--out", str(tmp_path / "res")])
        wall = time.monotonic() - w0
    finally:
        emu.close()
    assert rc == 0
    out = capsys.readouterr().out
    assert f"clock real ({emu.url} keeps its own time" in out, out
    assert "time_scale 60 applies to the built-in emulator only" in out
    summary, lines = load(only_dir(tmp_path / "res"))
    assert summary["clock"] == "real" and summary["time_scale"] == 1.0
    # on the scenario's x60 warp clock the 2 s timeout was 33 ms of real time: most timed out
    assert {x["status"] for x in lines} == {"ok"} and len(lines) == 6
    # real seconds: the last of the six arrivals 0.5 s apart goes at 2.5 s (on the x60 warp
    # clock, 42 ms). The run ends when that request does (fast latency: at once), not at
    # the 3 s duration; the plots this module skips used to pad the wall time past 3 s
    assert wall >= 2.5


@pytest.mark.slow
def test_an_emulator_killed_and_restarted_mid_run_loses_nothing(tmp_path):
    port = free_port()
    emu = Emulator(tmp_path, port)
    out = tmp_path / "res"
    client = subprocess.Popen([sys.executable, "-m", "loadgen", "run", str(write(tmp_path, "8s", "10/s")),
                               "--endpoint-url", emu.url, "--out", str(out), "--quiet"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:  # until requests are being answered
            jl = list(out.glob("*/requests.jsonl"))
            if jl and jl[0].read_text().count("\n") >= 10:
                break
            time.sleep(0.05)
        emu.kill()
        time.sleep(1.0)  # 10 requests/s meet a dead port: connection refused
        emu = Emulator(tmp_path, port)
        stdout, stderr = client.communicate(timeout=60)
    finally:
        if client.poll() is None:
            client.kill()
        emu.close()
    # connection errors are target errors of single attempts, not a failed run: no
    # thresholds in this scenario, so exit 0
    assert client.returncode == 0, stderr
    assert "Traceback" not in stderr
    summary, lines = load(only_dir(out))
    r = summary["arms"]["a"]["requests"]
    assert r["sent"] == len(lines) == r["ok"] + r["throttled"] + r["error"] + r["timeout"]
    assert r["sent"] == 80  # every scheduled request was sent and recorded once (retries are off)
    errors = [x for x in lines if x["error_code"] == "ConnectionError"]
    assert len(errors) >= 5, [x["error_code"] for x in lines]
    ends = sorted(x["start"] for x in lines if x["status"] == "ok")
    assert ends[-1] > max(x["start"] for x in errors)  # the restarted emulator served the rest
