"""Quota precedence: a user's top-level `[emulator.quotas] tpm`/`rpm` applies to every scope
(region, geo, global) unless the user set that scope's own key; the shipped per-scope
defaults only fill in what the user left alone."""

from __future__ import annotations

import json
import textwrap

import pytest

from loadgen.commands.cli import main
from loadgen.emulator.config import EmulatorConfig
from result_files import only_dir

HAIKU = "anthropic.claude-haiku-4-5-20251001-v1:0"


@pytest.mark.parametrize("table, want", [
    # shipped defaults: geo/global larger than one Region
    ({}, {"region": (2_000_000, 0), "geo": (4_000_000, 0), "global": (4_000_000, 0)}),
    # the user's top-level value wins over the shipped per-scope defaults
    ({"tpm": 30_000}, {"region": (30_000, 0), "geo": (30_000, 0), "global": (30_000, 0)}),
    ({"rpm": 12}, {"region": (2_000_000, 12), "geo": (4_000_000, 12), "global": (4_000_000, 12)}),
    # ... but not over the user's own per-scope value
    ({"tpm": 30_000, "geo": {"tpm": 50_000}},
     {"region": (30_000, 0), "geo": (50_000, 0), "global": (30_000, 0)}),
    ({"tpm": 30_000, "rpm": 5, "global": {"rpm": 7}},
     {"region": (30_000, 5), "geo": (30_000, 5), "global": (30_000, 7)}),
    # a per-scope value alone leaves the other scopes at their defaults
    ({"region": {"tpm": 10}}, {"region": (10, 0), "geo": (4_000_000, 0), "global": (4_000_000, 0)}),
])
def test_scope_limits_follow_the_documented_precedence(table, want):
    c = EmulatorConfig.from_mapping({"quotas": table})
    ids = {"region": HAIKU, "geo": "us." + HAIKU, "global": "global." + HAIKU}
    got = {s: (c.limit_for(ids[s], s).tpm, c.limit_for(ids[s], s).rpm) for s in ids}
    assert got == want


def test_per_model_quota_still_beats_everything():
    c = EmulatorConfig.from_mapping({"quotas": {"tpm": 30_000, "models": {"us." + HAIKU: {"tpm": 99}}}})
    assert c.limit_for("us." + HAIKU, "geo").tpm == 99
    assert c.limit_for("global." + HAIKU, "global").tpm == 30_000


# ~5000 input tokens per request, caching off, 2 req/s: ~600,000 tokens a minute, far
# over 30,000 (the acceptance review's repro: this ran with 0 throttled).
GEO = f"""
name = "geo-quota"
seed = 4
duration = "1m"

[model]
id = "{HAIKU}"
max_tokens = 100
stream = false

[workload]
kind = "single"
prefix_tokens = 5000
question_tokens = 12
output_tokens = 50

[arrivals]
kind = "constant"
rate = "2/s"

[emulator]
latency = "fast"

[emulator.quotas]
tpm = 30000

[[arms]]
name = "geo"
profile = "geo"
cache = false

[[arms]]
name = "global"
profile = "global"
cache = false
"""


def test_top_level_tpm_throttles_geo_and_global_arms_and_sweeps(tmp_path):
    # 30,000 TPM hold ~5 requests of ~5,100 tokens a minute; 120 are offered per arm
    sc = tmp_path / "geo.toml"
    sc.write_text(textwrap.dedent(GEO))
    assert main(["simulate", str(sc), "--sweep", "emulator.quotas.tpm=30000,4000000",
                 "--out", str(tmp_path / "out"), "--quiet"]) == 0
    rows = json.loads((only_dir(tmp_path / "out") / "sweep.json").read_text())["rows"]
    pct = {(r["emulator.quotas.tpm"], r["arm"]): r["throttle_pct"] for r in rows}
    assert pct["30000", "geo"] > 50 and pct["4000000", "geo"] == 0
    assert pct["30000", "global"] > 50 and pct["4000000", "global"] == 0
