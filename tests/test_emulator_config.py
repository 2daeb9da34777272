"""[emulator] config: defaults, overrides, errors naming the dotted key; `loadgen emulator`."""

import json
import os
import signal
import subprocess
import sys
import urllib.request

import pytest

from loadgen.commands.cli import main
from loadgen.emulator.config import ConfigError, EmulatorConfig
from loadgen.emulator.config_file import load_config_file


def test_defaults_are_realistic_and_documented_assumptions_hold():
    c = EmulatorConfig.defaults()
    assert c.latency_name == "realistic" and 0.5 <= c.latency.ttft_s <= 1.0
    assert 100 <= c.latency.tokens_per_s <= 150
    assert c.quota_default.rpm == 0                 # RPM off by default
    assert c.cache_scope == "region" and c.prefer_source


@pytest.mark.parametrize("table, message", [
    ({"quotas": {"tpm": -5}}, "emulator.quotas.tpm: expected a non-negative integer, got -5"),
    ({"quotas": {"rpm": "10"}}, "emulator.quotas.rpm: expected a non-negative integer, got '10'"),
    ({"colour": 1}, "emulator.colour: unknown key"),
    ({"latency": "slow"}, "emulator.latency: expected one of 'realistic', 'fast', got 'slow'"),
    ({"latency": {"ttft": 1}}, "emulator.latency.ttft: unknown key"),
    ({"cache": {"max_entries": 0}}, "emulator.cache.max_entries: expected a positive integer, got 0"),
    ({"cache": {"scope": "global"}}, "emulator.cache.scope: expected one of 'region', 'profile'"),
    ({"faults": {"error_rates": {"Boom": 0.1}}}, "emulator.faults.error_rates.Boom: unknown key"),
    ({"faults": {"error_rates": {"InternalServerException": 1.5}}},
     "emulator.faults.error_rates.InternalServerException: expected a number between 0.0 and 1.0, got 1.5"),
    ({"faults": {"brownouts": [{"region": "us-east-1", "start": "10m", "end": "soon"}]}},
     "emulator.faults.brownouts[0].end: expected a duration"),
    ({"quotas": {"window": "hourly"}}, "emulator.quotas.window: expected one of 'sliding', 'fixed'"),
])
def test_errors_name_the_dotted_key(table, message):
    with pytest.raises(ValueError) as e:
        EmulatorConfig.from_mapping(table)
    assert message in str(e.value)


@pytest.mark.parametrize("table, path, message", [
    ({"faults": {"brownouts": [{"region": "us-east-1", "start": "10m", "end": "5m"}]}},
     ("faults", "brownouts", 0, "end"), "expected a time after start (600.0 s), got '5m'"),
    ({"quotas": {"models": {"us.x": {"tpm": -5}}}},
     ("quotas", "models", "us.x", "tpm"), "expected a non-negative integer, got -5"),
    ({"faults": {"a.b": 1}}, ("faults", "a.b"), "unknown key; expected one of: error_rates, "
     "mid_stream_rate, mid_stream_code, slow_stream_rate, slow_stream_factor, connection_reset_rate, brownouts"),
    ({"colour": 1}, ("colour",), "unknown key; expected one of: latency, default_max_tokens, "
     "stream_errors_in_band, stream_chunk_tokens, output_tokens, quotas, routing, cache, faults"),
])
def test_errors_carry_the_key_path_and_the_message_apart(table, path, message):
    # callers place an error with .path (a key may hold dots) and never parse its text
    with pytest.raises(ConfigError) as e:
        EmulatorConfig.from_mapping(table)
    assert (e.value.path, e.value.message) == (path, message)
    with pytest.raises(ConfigError) as named:
        EmulatorConfig.from_mapping(table, source="s.toml")
    assert named.value.path == path and str(named.value) == f"s.toml: {e.value}"


def test_error_text_names_the_dotted_key_as_before():
    with pytest.raises(ValueError) as e:
        EmulatorConfig.from_mapping({"quotas": {"models": {"us.x": {"tpm": -5}}}})
    assert str(e.value) == 'emulator.quotas.models."us.x".tpm: expected a non-negative integer, got -5'
    with pytest.raises(ValueError) as e:
        EmulatorConfig.from_mapping({"faults": {"brownouts": [{"region": 3, "end": "1m"}]}})
    assert str(e.value) == "emulator.faults.brownouts[0].region: expected a Region name, got 3"


def test_overrides_merge_over_defaults():
    c = EmulatorConfig.from_mapping({"latency": {"preset": "fast", "ttft_s": 0.2},
                                     "quotas": {"rpm": 100, "geo": {"rpm": 50}},
                                     "faults": {"brownouts": [{"region": "us-east-2", "start": "1m", "end": "90s"}]}})
    assert c.latency.ttft_s == 0.2 and c.latency.tokens_per_s == 0.0
    assert c.quota_default.tpm == 2_000_000 and c.quota_default.rpm == 100
    assert c.limit_for("us.x", "geo").rpm == 50 and c.limit_for("us.x", "geo").tpm == 4_000_000
    b = c.faults.brownouts[0]
    assert (b.start_s, b.end_s, b.code) == (60.0, 90.0, "ServiceUnavailableException")


def test_config_file_scenario_or_bare_table(tmp_path):
    scen = tmp_path / "s.toml"
    scen.write_text('name = "x"\n[emulator]\nlatency = "fast"\n[emulator.quotas]\ntpm = 1000\n')
    assert load_config_file(str(scen)).quota_default.tpm == 1000
    bare = tmp_path / "e.toml"
    bare.write_text('latency = "fast"\n[quotas]\ntpm = 77\n')
    assert load_config_file(str(bare)).quota_default.tpm == 77
    bad = tmp_path / "b.toml"
    bad.write_text('[emulator.quotas]\ntpm = -1\n')
    with pytest.raises(ValueError, match=r"b\.toml:2: emulator\.quotas\.tpm"):
        load_config_file(str(bad))


@pytest.mark.parametrize("text, line, key", [
    ('name = "x"\n\n[emulator]\nlatency = "fast"\n\n[emulator.quotas]\nrpm = 5\ntpm = -1\n',
     8, "emulator.quotas.tpm: expected a non-negative integer, got -1"),
    ('latency = "fast"\n[faults]\nbrownouts = [\n  { region = "us-east-1", start = "1m", end = "2m" },\n'
     '  { region = "us-east-1", start = "10m", end = "soon" },\n]\n',
     5, "emulator.faults.brownouts[1].end: expected a duration"),
    ('latency = "fast"\n\n[quotas.models."us.anthropic.x"]\ntpm = -5\n',
     4, 'emulator.quotas.models."us.anthropic.x".tpm: expected a non-negative integer'),
    ('latency = "fast"\n\n\ncolour = 3\n', 4, "emulator.colour: unknown key"),
    ('latency = "fast"\n[faults]\nmid_stream_rate = 0.1\n"a.b" = 1\n', 4, "emulator.faults.a.b: unknown key"),
    ('latency = "fast"\n\n[quotas]\ntpd = -1\n', 4, "emulator.quotas.tpd: expected a non-negative integer"),
    ('[quotas.geo]\ntpm = 5\ntpd = "lots"\n', 3, "emulator.quotas.geo.tpd: expected a non-negative integer"),
    ('[emulator.latency]\npreset = "fast"\n\nqueue_knee = 2\n', 4, "emulator.latency.queue_knee: expected"),
    ('latency = "fast"\nlatency = "x"\n', 2, "TOML syntax error"),
])
def test_loadgen_emulator_bad_config_names_file_line_and_key(tmp_path, capsys, text, line, key):
    cfg = tmp_path / "e.toml"
    cfg.write_text(text)
    assert main(["emulator", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert f"{cfg}:{line}: {key}" in err, err


def test_loadgen_emulator_config_lists_every_problem_in_line_order(tmp_path, capsys):
    cfg = tmp_path / "e.toml"
    cfg.write_text('[cache]\nmax_entrie = 10\n\n[quotas]\nrmp = 5\ntpm = "lots"\n\n'
                   '[faults]\nbrownouts = [{ region = "us-east-1", start = "soon", end = "1m" }]\n'
                   'mid_stream_rate = 2\n')
    assert main(["emulator", "--config", str(cfg)]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"loadgen emulator: {cfg}:2: emulator.cache.max_entrie: unknown key; did you mean 'max_entries'?",
        f"{cfg}:5: emulator.quotas.rmp: unknown key; did you mean 'rpm'?",
        f"{cfg}:6: emulator.quotas.tpm: expected a non-negative integer, got 'lots'",
        f"{cfg}:9: emulator.faults.brownouts[0].start: expected a duration (seconds, or a string like "
        '"90s", "10m", "1h"), got \'soon\'',
        f"{cfg}:10: emulator.faults.mid_stream_rate: expected a number between 0.0 and 1.0, got 2",
    ]


def test_loadgen_emulator_command_serves_and_stops_on_ctrl_c(tmp_path):
    cfg = tmp_path / "e.toml"
    cfg.write_text('latency = "fast"\n')
    p = subprocess.Popen([sys.executable, "-m", "loadgen", "emulator", "--config", str(cfg), "--seed", "3"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = p.stdout.readline()
        assert line.startswith("loadgen emulator listening on http://127.0.0.1:"), line
        url = line.split()[-1]
        body = {"messages": [{"role": "user", "content": [{"text": "Reply with about 5 tokens"}]}],
                "inferenceConfig": {"maxTokens": 10}}
        req = urllib.request.Request(f"{url}/model/anthropic.claude-haiku-4-5-20251001-v1%3A0/converse",
                                     data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            assert json.load(r)["usage"]["outputTokens"] == 5
            assert r.headers["x-loadgen-served-region"] == "us-east-1"
        p.send_signal(signal.SIGINT)
        assert p.wait(10) == 0
    finally:
        if p.poll() is None:
            p.kill()


def test_loadgen_emulator_bad_config_exits_2(tmp_path):
    cfg = tmp_path / "e.toml"
    cfg.write_text('[quotas]\ntpm = -5\n')
    r = subprocess.run([sys.executable, "-m", "loadgen", "emulator", "--config", str(cfg)],
                       capture_output=True, text=True, timeout=20)
    assert r.returncode == 2
    assert "emulator.quotas.tpm: expected a non-negative integer, got -5" in r.stderr


def test_every_problem_is_found_in_one_pass_and_each_reported_once():
    with pytest.raises(ConfigError) as e:
        EmulatorConfig.from_mapping({"quotas": {"tpm": "lots", "rmp": 5},
                                     "faults": {"brownouts": [5, {"region": "r", "start": "soon"}]}})
    assert [(p.path, p.message) for p in e.value.problems] == [
        (("quotas", "rmp"), "unknown key; did you mean 'rpm'?"),
        (("quotas", "tpm"), "expected a non-negative integer, got 'lots'"),  # not again under geo and global
        (("faults", "brownouts", 0), "expected a table, got 5"),  # not again for each key it lacks
        (("faults", "brownouts", 1, "start"),
         'expected a duration (seconds, or a string like "90s", "10m", "1h"), got \'soon\''),
        (("faults", "brownouts", 1, "end"), "missing; expected a duration"),
    ]
    assert str(e.value) == "\n".join(str(p) for p in e.value.problems)
