"""CI ergonomics: `--junit FILE` (threshold verdicts as JUnit XML), `-v` / `--log-level`
(stdlib logging on stderr, credentials never in it) and NO_COLOR."""

from __future__ import annotations

import io
import logging
import os
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from loadgen.commands.cli import main
from loadgen.commands.logs import configure

from test_cli_machine_readable import QUICK, write

ROOT = Path(__file__).resolve().parent.parent


def _cases(xml_path: Path) -> dict[tuple[str, str], ET.Element]:
    root = ET.parse(xml_path).getroot()
    return {(c.get("classname"), c.get("name")): c for c in root.iter("testcase")}


def test_junit_has_one_testcase_per_threshold_and_arm_with_the_reports_failure_line(tmp_path, capsys):
    sc = write(tmp_path)
    junit = tmp_path / "reports" / "junit.xml"   # parents made
    d = tmp_path / "r"
    assert main(["simulate", str(sc), "--results-dir", str(d), "--junit", str(junit)]) == 1
    text = capsys.readouterr().out
    root = ET.parse(junit).getroot()
    # the shape JUnit consumers read: testsuites > testsuite (counts) > testcase (> failure)
    assert root.tag == "testsuites"
    (suite,) = root.findall("testsuite")
    assert suite.get("name") == "quick-ci"
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors"), suite.get("skipped")) == ("4", "2", "0", "0")
    assert float(suite.get("time")) >= 0
    cases = _cases(junit)
    assert set(cases) == {(f"loadgen.quick-ci.{arm}", expr) for arm in ("cached", "plain")
                          for expr in ("error_rate < 50%", "cost_per_1000 < $0.01")}
    for arm in ("cached", "plain"):
        assert cases[(f"loadgen.quick-ci.{arm}", "error_rate < 50%")].find("failure") is None   # PASS
        failure = cases[(f"loadgen.quick-ci.{arm}", "cost_per_1000 < $0.01")].find("failure")  # FAIL
        assert failure is not None and failure.get("type") == "threshold"
        msg = failure.get("message")
        assert msg.split() [:4] == [arm, "cost_per_1000", "<", "$0.01"] and "FAIL" in msg and "limit" in msg
        # the same line the text report printed
        assert " ".join(msg.split()) in [" ".join(line.split()) for line in text.splitlines()]

    # `report --junit` on the same directory says the same
    again = tmp_path / "again.xml"
    assert main(["report", str(d), "--no-plots", "--junit", str(again)]) == 1
    assert {k: v.find("failure") is None for k, v in _cases(again).items()} == \
        {k: v.find("failure") is None for k, v in cases.items()}


def test_junit_of_a_passing_run_and_a_junit_path_that_cannot_be_written(tmp_path, capsys):
    sc = write(tmp_path)
    ok = tmp_path / "ok.xml"
    assert main(["simulate", str(sc), "--set", "thresholds.all=[\"error_rate < 50%\"]", "--out", str(tmp_path / "r"),
                 "--junit", str(ok), "--quiet"]) == 0
    root = ET.parse(ok).getroot()
    assert (root.get("tests"), root.get("failures")) == ("2", "0")
    assert all(c.find("failure") is None for c in root.iter("testcase"))
    # a --junit path that cannot be a file: exit 2 before anything runs
    assert main(["simulate", str(sc), "--out", str(tmp_path / "n"), "--junit", str(tmp_path)]) == 2
    assert "--junit" in capsys.readouterr().err
    assert not (tmp_path / "n").exists()



# /proc exists and is a folder, but no file can be made in it (even by root)
UNWRITABLE = Path("/proc")


@pytest.mark.skipif(not UNWRITABLE.is_dir(), reason="needs /proc")
@pytest.mark.parametrize("command", ["run", "simulate"])
@pytest.mark.parametrize("flag", [["--junit", "/proc/loadgen-x.xml"], ["--output", "jsonl=/proc/loadgen-z.jsonl"]])
def test_an_output_that_cannot_be_created_is_refused_before_anything_is_sent(tmp_path, capsys, command, flag):
    """--junit or --output jsonl=PATH in a folder that refuses files: exit 2 up front, with
    no results directory (it used to be found after every request was sent)."""
    sc = write(tmp_path)
    out = tmp_path / "r"
    extra = ["--time-scale", "50", "--max-requests", "2"] if command == "run" else []
    assert main([command, str(sc), "--out", str(out), "--quiet", *extra, *flag]) == 2
    err = capsys.readouterr().err
    assert f"{flag[0]}" in err and "cannot create a file in /proc" in err, err
    assert not out.exists()


@pytest.mark.skipif(not UNWRITABLE.is_dir(), reason="needs /proc")
def test_report_refuses_a_junit_file_it_cannot_create_before_reading(tmp_path, capsys):
    assert main(["report", str(tmp_path / "no-such-results"), "--junit", "/proc/loadgen-x.xml"]) == 2
    err = capsys.readouterr().err
    assert "--junit: cannot create a file in /proc" in err and "no-such-results" not in err, err


def test_the_creation_probe_leaves_nothing_behind(tmp_path):
    sc = write(tmp_path)
    assert main(["simulate", str(sc), "--out", str(tmp_path / "r"), "--quiet", "--junit", str(tmp_path / "j" / "ok.xml"),
                 "--output", f"jsonl={tmp_path / 'i.jsonl'}"]) in (0, 1)   # 1: a threshold failed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["i.jsonl", "j", "quick.toml", "r"]
    assert [p.name for p in (tmp_path / "j").iterdir()] == ["ok.xml"]


# ---- logging

THROTTLED = QUICK.replace('rate = "1/s"', 'rate = "10/s"').replace(
    '[emulator]\nlatency = "fast"',
    '[emulator]\nlatency = "fast"\n\n[emulator.quotas]\nrpm = 10\n\n[retry]\npolicy = "fixed"\nmax_attempts = 2\nbase = "1s"',
).replace('duration = "30s"', 'duration = "3s"')

SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY"


def test_debug_logs_retries_and_throttles_and_never_a_secret(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_SESSION_TOKEN", "session-token-not-to-be-logged")
    sc = write(tmp_path, THROTTLED, "thr.toml")
    run = ["run", str(sc), "--quiet", "--arm", "cached", "--time-scale", "20"]
    assert main(["--log-level", "debug", *run, "--out", str(tmp_path / "b")]) == 1
    out, err = capsys.readouterr()
    assert "INFO loadgen.api.run: built-in emulator listening on http://127.0.0.1:" in err
    assert "DEBUG loadgen.engine.runner: cached session" in err
    assert "throttled ThrottlingException" in err and "retry in" in err
    assert SECRET not in err + out and "session-token-not-to-be-logged" not in err
    # -v after the command name is info: the emulator's address, not every retry
    assert main([*run, "--out", str(tmp_path / "c"), "-v"]) == 1
    err = capsys.readouterr().err
    assert "INFO loadgen.api.run" in err and "DEBUG" not in err
    # and without either, the output is what it always was
    assert main([*run, "--out", str(tmp_path / "a")]) == 1
    err = capsys.readouterr().err
    assert "INFO" not in err and "DEBUG" not in err


def test_a_secret_in_a_log_message_is_masked():
    stream = io.StringIO()
    configure(2, None, {"AWS_SECRET_ACCESS_KEY": SECRET}, stream)
    logging.getLogger("loadgen.test").debug("oops %s", SECRET)
    configure(0, None, {}, io.StringIO())  # back to the default for the other tests in this process
    assert SECRET not in stream.getvalue() and "oops ***" in stream.getvalue()


# ---- NO_COLOR


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_no_color_drops_the_status_lines_ansi_codes(tmp_path, monkeypatch):
    sc = write(tmp_path)
    for no_color, expect_ansi in (("", True), ("1", False)):
        term = _Terminal()
        monkeypatch.setattr(sys, "stderr", term)
        monkeypatch.setenv("NO_COLOR", no_color)
        main(["run", str(sc), "--out", str(tmp_path / f"r{no_color}"), "--max-requests", "2", "--time-scale", "50"])
        monkeypatch.undo()
        out = term.getvalue()
        assert "sent " in out  # the status line was drawn on the "terminal"
        assert ("\x1b" in out) is expect_ansi, repr(out[:200])
        if not expect_ansi:
            assert "\r" in out  # still redrawn in place
    # off a terminal (CI logs, pipes): plain lines, no ANSI, whatever NO_COLOR says
    plain = io.StringIO()
    monkeypatch.setattr(sys, "stderr", plain)
    main(["run", str(sc), "--out", str(tmp_path / "pipe"), "--max-requests", "2", "--time-scale", "50"])
    monkeypatch.undo()
    assert "sent " in plain.getvalue() and "\x1b" not in plain.getvalue() and "\r" not in plain.getvalue()
