"""Fuzzing scenario files: whatever a user (or a broken editor) hands to `loadgen validate`,
the answer is exit 0 with a plan or exit 2 with `file:line: ...` lines, never a traceback.

Two generators: random TOML documents built from the scenario vocabulary (keys that exist,
keys that do not, values of every type and of plausible and absurd sizes), and random
mutations of the shipped scenarios (lines dropped, duplicated, swapped, values replaced,
bytes inserted, the file cut short). `validate` runs in-process for speed; a few cases go
through a real subprocess at the end.
"""

from __future__ import annotations

import contextlib
import glob
import io
import json
import math
import os
import re
import subprocess
import sys
import tempfile

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loadgen.commands.cli import main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHIPPED = {os.path.basename(p): open(p, encoding="utf-8").read()
           for p in sorted(glob.glob(os.path.join(ROOT, "scenarios", "*.toml")))}

KEYS = ["name", "seed", "duration", "description", "target", "model", "workload", "arrivals", "sessions",
        "retry", "arms", "thresholds", "pricing", "emulator", "kind", "region", "time_scale", "id",
        "max_tokens", "stream", "prefix_tokens", "question_tokens", "turn_tokens", "output_tokens", "turns",
        "rate", "dist", "median", "p90", "low", "high", "mean", "value", "values", "min", "max", "arrival",
        "think_time", "stages", "target", "start_rate", "every", "size", "spread", "cache_ttl", "profile",
        "cache", "policy", "max_attempts", "all", "latency", "file", "x", "", "é", "a.b"]
WORDS = ["5m", "1h", "0s", "-3s", "2h30m", "876000h", "20/s", "1e12/s", "0/s", "12/h", "poisson", "constant",
         "stages", "bursts", "trace", "lognormal", "uniform", "empirical", "single", "agent", "emulator", "aws",
         "geo", "global", "region", "us-east-1", "anthropic.claude-haiku-4-5-20251001-v1:0",
         "us.anthropic.claude-sonnet-4-5-20250929-v1:0", "p99(ttft) < 2s", "throttle_rate < 1%", "fast",
         "-", "--x", "", "\x00", "caf\u00e9", "a" * 300]

scalars = st.one_of(
    st.integers(min_value=-(2 ** 63), max_value=2 ** 63 - 1),
    st.sampled_from([0, 1, -1, 10_000_000, 2 ** 62]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.sampled_from(WORDS),
    st.text(max_size=12),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.sampled_from(KEYS), inner, max_size=5)),
    max_leaves=25,
)
documents = st.dictionaries(st.sampled_from(KEYS), values, max_size=10)


def _key(k: str) -> str:
    return k if re.fullmatch(r"[A-Za-z0-9_-]+", k) else json.dumps(k)


def _value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return json.dumps(v)   # JSON string escapes are valid TOML basic-string escapes
    if isinstance(v, list):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    return "{" + ", ".join(f"{_key(k)} = {_value(x)}" for k, x in v.items()) + "}"


def to_toml(doc: dict) -> str:
    """Top-level tables as [headers] (so header line tracking is exercised), the rest inline."""
    lines = [f"{_key(k)} = {_value(v)}" for k, v in doc.items() if not isinstance(v, dict)]
    for k, v in doc.items():
        if isinstance(v, dict):
            lines += ["", f"[{_key(k)}]"] + [f"{_key(kk)} = {_value(vv)}" for kk, vv in v.items()]
    return "\n".join(lines) + "\n"


LINE = re.compile(r"^(warning: )?(?P<file>.+?):(?P<line>\d+): \S")


def check_validate(data: bytes) -> tuple[int, str]:
    """Run `loadgen validate` in-process on `data`; assert the outcome contract."""
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "fuzz.toml")
        with open(path, "wb") as f:
            f.write(data)
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = main(["validate", path])
        err_text = err.getvalue()
        assert "Traceback" not in err_text
        assert rc in (0, 2), (rc, err_text)
        lines = err_text.splitlines()
        if rc == 0:
            assert out.getvalue().rstrip().endswith("Nothing was sent.")
            assert all(ln.startswith(f"warning: {path}:") for ln in lines), err_text
        else:
            assert out.getvalue() == ""
            assert lines and re.fullmatch(rf"{re.escape(path)}: \d+ problems?; nothing was sent", lines[-1]), err_text
            for ln in lines[:-1]:
                m = LINE.match(ln)
                assert m and m.group("file") == path, ln   # every problem names this file and a line
        return rc, err_text


# 30 examples each keeps the suite quick; LOADGEN_FUZZ_EXAMPLES=1000 for a deeper search
FUZZ = settings(max_examples=int(os.environ.get("LOADGEN_FUZZ_EXAMPLES", "30")), deadline=None,
                suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(documents)
def test_random_toml_documents_never_crash_validate(doc):
    check_validate(to_toml(doc).encode("utf-8"))


def _mutate(text: str, ops: list[tuple[str, int, int, object]]) -> bytes:
    lines = text.split("\n")
    data = None
    for op, i, j, payload in ops:
        n = len(lines)
        i, j = i % max(n, 1), j % max(n, 1)
        if op == "drop" and lines:
            del lines[i]
        elif op == "dup" and lines:
            lines.insert(i, lines[i])
        elif op == "swap" and lines:
            lines[i], lines[j] = lines[j], lines[i]
        elif op == "value" and lines and "=" in lines[i]:
            k = lines[i].split("=", 1)[0]
            lines[i] = f"{k}= {_value(payload)}"
        elif op == "insert":
            lines.insert(i, str(payload))
        elif op == "cut":
            data = "\n".join(lines).encode("utf-8")[: j * 7]
    out = "\n".join(lines).encode("utf-8")
    return data if data is not None else out


ops = st.lists(st.tuples(st.sampled_from(["drop", "dup", "swap", "value", "value", "value", "insert", "cut"]),
                         st.integers(min_value=0, max_value=200), st.integers(min_value=0, max_value=200),
                         st.one_of(values, st.sampled_from(["[arms]", "[[arms]]", "[target.x]", "[[a.b]]",
                                                            "x = [[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]",
                                                            "]", "\"", "'''", "\\u00"]))),
               min_size=1, max_size=4)


@FUZZ
@given(st.sampled_from(sorted(SHIPPED)), ops)
def test_mutations_of_shipped_scenarios_never_crash_validate(name, mutation):
    check_validate(_mutate(SHIPPED[name], mutation))


@FUZZ
@given(st.sampled_from(sorted(SHIPPED)), st.binary(max_size=8), st.integers(min_value=0, max_value=5000))
def test_stray_bytes_in_shipped_scenarios_never_crash_validate(name, junk, at):
    data = SHIPPED[name].encode("utf-8")
    at %= len(data) + 1
    check_validate(data[:at] + junk + data[at:])


def test_shipped_scenarios_pass_the_same_check():
    for text in SHIPPED.values():
        assert check_validate(text.encode("utf-8"))[0] == 0


def test_a_handful_of_bad_files_through_a_real_subprocess(tmp_path):
    steady = SHIPPED["steady-chat.toml"]
    cases = {
        "binary.toml": bytes(range(256)),
        "utf16.toml": steady.encode("utf-16"),
        "bomb.toml": ("x = " + "[" * 3000 + "]" * 3000 + "\n").encode(),
        "huge.toml": steady.replace('duration = "2m"', 'duration = "876000h"').encode(),
        "name.toml": steady.replace('name = "steady-chat"', 'name = "--20261202T110853Z"').encode(),
    }
    for name, data in cases.items():
        p = tmp_path / name
        p.write_bytes(data)
        r = subprocess.run([sys.executable, "-m", "loadgen", "validate", str(p)], capture_output=True, text=True,
                           timeout=60, cwd=ROOT)
        assert r.returncode == 2, (name, r.stderr)
        assert r.stdout == "" and "Traceback" not in r.stderr
        assert r.stderr.startswith(f"{p}:"), (name, r.stderr)
