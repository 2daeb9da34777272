"""The price catalog and the cost of a Bedrock call, as users meet them.

Golden figures come from the issue and DESIGN.md; they must hold to the shown precision.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loadgen.commands import cli

from loadgen.catalog import models

from loadgen.catalog import pricing
from loadgen.catalog.pricing import Breakdown, PricingError, breakdown, cost, default_table
from loadgen.scenario import PriceOverride

HAIKU = "anthropic.claude-haiku-4-5-20251001-v1:0"
SONNET = "anthropic.claude-sonnet-4-5-20250929-v1:0"
OPUS = "anthropic.claude-opus-4-5-20251101-v1:0"
SONNET37 = "anthropic.claude-3-7-sonnet-20250219-v1:0"
NOVA = "amazon.nova-micro-v1:0"
CLAUDE_45 = (HAIKU, SONNET, OPUS)

WRITE_CALL = {"inputTokens": 12, "cacheWriteInputTokens": 5024, "outputTokens": 0}
READ_CALL = {"inputTokens": 11, "cacheReadInputTokens": 5024, "outputTokens": 0}


# ---------------------------------------------------------------- golden values

def test_cache_write_call_on_global_profile_5m_and_1h():
    assert round(cost(f"global.{HAIKU}", WRITE_CALL), 9) == 0.006292
    assert round(cost(f"global.{HAIKU}", WRITE_CALL, cache_ttl="1h"), 9) == 0.010060


def test_cache_write_call_on_us_profile_is_ten_percent_more():
    assert round(cost(f"us.{HAIKU}", WRITE_CALL), 9) == 0.0069212
    assert round(cost(f"us.{HAIKU}", WRITE_CALL, cache_ttl="1h"), 9) == 0.011066
    # in-Region (bare id) is priced like the geographic profile
    assert cost(HAIKU, WRITE_CALL) == cost(f"us.{HAIKU}", WRITE_CALL)


def test_cache_read_call_on_global_profile():
    assert round(cost(f"global.{HAIKU}", READ_CALL), 9) == 0.0005134


def test_design_reference_run_with_illustrative_override():
    """DESIGN.md: `us.` Haiku 4.5 at the tutorial's $1 / $5, ~5k prefix, 4 short questions.

    Usage used here: each call sends a 5024-token cached prefix plus a 12-token question
    and gets 80 output tokens (320 output tokens over the 4 calls: the "~300 output").
    Baseline (no cache): 4 x (5036 input, 80 output) = $0.021744 (~$0.0218, $5.44/1000).
    Cached: call 1 writes 5024 (+12 input), calls 2-4 read 5024 (+12 input) = $0.0094352:
    (12 + 5024 x 1.25 + 80 x 5) + 3 x (12 + 5024 x 0.10 + 80 x 5) = 6692 + 3 x 914.4 = 9435.2
    millionths of a dollar.
    (At 300 output tokens *per call* the baseline would be $0.0261, so the figures imply
    ~300 in all.)
    """
    table = default_table().with_overrides([PriceOverride(f"us.{HAIKU}", 1.0, 5.0)])
    mid = f"us.{HAIKU}"
    baseline = [{"inputTokens": 5036, "outputTokens": 80}] * 4
    cached = [{"inputTokens": 12, "cacheWriteInputTokens": 5024, "outputTokens": 80}] + [
        {"inputTokens": 12, "cacheReadInputTokens": 5024, "outputTokens": 80}
    ] * 3
    base_usd = sum(cost(mid, u, prices=table) for u in baseline)
    cached_usd = sum(cost(mid, u, prices=table) for u in cached)
    assert base_usd == pytest.approx(0.0218, rel=0.01)
    assert cached_usd == pytest.approx(0.0094, rel=0.01)
    assert base_usd == pytest.approx(0.021744, rel=1e-12)   # 4 x (5036 x 1 + 80 x 5) / 1e6
    assert cached_usd == pytest.approx(0.0094352, rel=1e-12)
    assert base_usd / 4 * 1000 == pytest.approx(5.45, rel=0.01)
    assert cached_usd / 4 * 1000 == pytest.approx(2.35, rel=0.01)
    # the override changed the us. row only: global and in-Region keep catalog prices
    assert cost(f"global.{HAIKU}", baseline[0], prices=table) == cost(f"global.{HAIKU}", baseline[0])
    assert cost(HAIKU, baseline[0], prices=table) == cost(HAIKU, baseline[0])


def test_cache_details_split_write_tokens_by_ttl():
    usage = {"inputTokens": 0, "outputTokens": 0, "cacheWriteInputTokens": 1000,
             "cacheDetails": [{"ttl": "1h", "inputTokens": 400}, {"ttl": "5m", "inputTokens": 600}]}
    # global Haiku: $1/M input; 400 x 2.0 + 600 x 1.25 = 1550 input-token equivalents
    expected = (400 * 2.0 + 600 * 1.25) / 1e6
    assert cost(f"global.{HAIKU}", usage) == pytest.approx(expected, rel=1e-12)
    # cacheDetails decides, whatever TTL the request asked for
    assert cost(f"global.{HAIKU}", usage, cache_ttl="1h") == pytest.approx(expected, rel=1e-12)
    assert breakdown(f"global.{HAIKU}", usage).cache_write == pytest.approx(0.00155, rel=1e-12)


def test_cache_details_remainder_uses_requested_ttl_and_overcount_is_an_error():
    part = {"inputTokens": 0, "cacheWriteInputTokens": 1000, "cacheDetails": [{"ttl": "1h", "inputTokens": 400}]}
    assert cost(f"global.{HAIKU}", part, cache_ttl="5m") == pytest.approx((800 + 750) / 1e6)
    empty = {"cacheWriteInputTokens": 1000, "cacheDetails": []}
    assert cost(f"global.{HAIKU}", empty, cache_ttl="1h") == pytest.approx(2000 / 1e6)
    over = {"cacheWriteInputTokens": 100, "cacheDetails": [{"ttl": "5m", "inputTokens": 400}]}
    with pytest.raises(PricingError, match="cacheWriteInputTokens is 100"):
        cost(f"global.{HAIKU}", over)
    with pytest.raises(PricingError, match="ttl must be one of 5m, 1h"):
        cost(f"global.{HAIKU}", {"cacheWriteInputTokens": 5, "cacheDetails": [{"ttl": "2h", "inputTokens": 5}]})


def test_breakdown_buckets_add_up_and_merge():
    u = {"inputTokens": 100, "outputTokens": 50, "cacheReadInputTokens": 1000, "cacheWriteInputTokens": 2000}
    b = breakdown(f"global.{SONNET}", u)
    assert b.input == pytest.approx(100 * 3 / 1e6)
    assert b.output == pytest.approx(50 * 15 / 1e6)
    assert b.cache_read == pytest.approx(1000 * 3 * 0.1 / 1e6)
    assert b.cache_write == pytest.approx(2000 * 3 * 1.25 / 1e6)
    assert b.total == pytest.approx(b.input + b.output + b.cache_read + b.cache_write)
    # by hand, global Sonnet 4.5 at $3 / $15: 100 x 3 + 50 x 15 + 1000 x 0.3 + 2000 x 3.75 = 8850 per 1e6
    assert b.total == pytest.approx(0.00885, rel=1e-12)
    assert cost(f"global.{SONNET}", u) == pytest.approx(0.00885, rel=1e-12)
    assert (b + b).total == pytest.approx(2 * b.total)
    assert (Breakdown() + b) == b
    # the runner folds the fields into the summary's cost buckets, total among them
    assert set(dataclasses.asdict(b)) == {"input", "output", "cache_read", "cache_write", "total"}


# ---------------------------------------------------------------- catalog facts

def test_catalog_is_dated_and_every_row_has_a_source():
    t = default_table()
    assert t.as_of == dt.date(2026, 12, 2)
    for row in t.rows.values():
        assert row.source.startswith("https://"), row
        assert row.input_per_mtok > 0 and row.output_per_mtok > row.input_per_mtok
    for fam in t.families.values():
        assert fam.source.startswith("https://")


def test_claude_family_multipliers_and_list_prices():
    t = default_table()
    claude = t.families["claude"]
    assert (claude.cache_read, claude.cache_write["5m"], claude.cache_write["1h"], claude.batch) == (0.10, 1.25, 2.0, 0.5)
    expect = {HAIKU: (1.0, 5.0, 1.1, 5.5), SONNET: (3.0, 15.0, 3.3, 16.5), OPUS: (5.0, 25.0, 5.5, 27.5)}
    for mid, (gi, go, ri, ro) in expect.items():
        g = t.price(f"global.{mid}")
        assert (g.input_per_mtok, g.output_per_mtok) == (gi, go)
        # Sonnet and Opus 4.5 have no bare-id (in-Region) row: Bedrock serves them by profile only
        for form in ((mid,) if mid == HAIKU else ()) + (f"us.{mid}", f"eu.{mid}"):
            r = t.price(form)
            assert (r.input_per_mtok, r.output_per_mtok) == (ri, ro)
    s37 = t.price(f"us.{SONNET37}")
    assert (s37.input_per_mtok, s37.output_per_mtok) == (3.0, 15.0)


def test_every_served_model_is_priced_in_its_model_catalog_family():
    t = default_table()
    for mid, info in models.catalog().items():
        assert t.model_family[mid] == info.family
        # a row exactly for each profile kind that exists (models.toml), none for the others
        assert ((mid, "region") in t.rows) == info.in_region
        assert ((mid, "geo") in t.rows) == bool(info.geo_profiles)
        assert ((mid, "global") in t.rows) == info.global_profile


def test_nova_family_prices_cache_differently_from_claude():
    t = default_table()
    nova = t.families["nova"]
    assert nova.cache_read == 0.25 and nova.cache_write["5m"] == 1.0
    u = {"inputTokens": 0, "cacheReadInputTokens": 1_000_000, "cacheWriteInputTokens": 1_000_000}
    b = breakdown(f"us.{NOVA}", u)
    assert b.cache_read == pytest.approx(0.035 * 0.25)
    assert b.cache_write == pytest.approx(0.035 * 1.0)
    with pytest.raises(PricingError, match="no cache-write price for TTL '1h'"):
        cost(NOVA, {"cacheWriteInputTokens": 10}, cache_ttl="1h")


# ---------------------------------------------------------------- errors

def test_unknown_model_is_an_error_naming_the_catalog_file():
    with pytest.raises(PricingError) as e:
        cost("us.anthropic.claude-nonexistent-v1:0", {"inputTokens": 1})
    assert "pricing.toml" in str(e.value) and "claude-nonexistent" in str(e.value)
    assert isinstance(e.value, ValueError)


def test_missing_profile_row_is_an_error_not_zero():
    with pytest.raises(PricingError, match="no global price"):
        cost(f"global.{SONNET37}", {"inputTokens": 1})


@pytest.mark.parametrize("usage, msg", [
    ({"inputTokens": -1}, "inputTokens must be a token count >= 0"),
    ({"outputTokens": "12"}, "outputTokens must be a token count"),
])
def test_bad_usage_is_an_error(usage, msg):
    with pytest.raises(PricingError, match=msg):
        cost(HAIKU, usage)


def test_bad_cache_ttl_is_an_error():
    with pytest.raises(PricingError, match="cache_ttl must be one of 5m, 1h"):
        cost(HAIKU, {"inputTokens": 1}, cache_ttl="10m")


def test_overrides_pick_the_row_by_prefix_and_can_add_a_row():
    t = default_table()
    o = t.with_overrides([PriceOverride(f"global.{SONNET}", 2.0, 10.0), PriceOverride(f"global.{SONNET37}", 1, 2)])
    assert o.price(f"global.{SONNET}").input_per_mtok == 2.0
    assert o.price(f"global.{SONNET}").overridden
    assert o.price(f"us.{SONNET}").input_per_mtok == 3.3
    assert o.price(f"global.{SONNET37}").output_per_mtok == 2.0
    assert t.price(f"global.{SONNET}").input_per_mtok == 3.0  # the default table is unchanged
    with pytest.raises(PricingError, match="neither the price catalog"):
        t.with_overrides([PriceOverride("us.acme.unknown-v1:0", 1, 1)])
    with pytest.raises(PricingError, match="must be a number >= 0"):
        t.with_overrides([PriceOverride(HAIKU, -1, 1)])


def test_catalog_errors_say_where():
    good = {"as_of": dt.date(2026, 1, 1), "families": {"f": {"cache_read": 0.1, "cache_write": {"5m": 1.25},
            "batch": 0.5, "source": "s", "verified": True}}, "models": {"m": {"family": "f", "region": {
            "input": 1, "output": 2, "source": "s", "verified": True}}}}
    assert pricing.table_from_dict(good, "x.toml").price("m").output_per_mtok == 2.0
    bad = {**good, "models": {"m": {"family": "g"}}}
    with pytest.raises(PricingError, match=r"x.toml: models.'m': family 'g' is not defined"):
        pricing.table_from_dict(bad, "x.toml")
    bad = {**good, "models": {"m": {"family": "f", "globl": {}}}}
    with pytest.raises(PricingError, match="unknown key 'globl'"):
        pricing.table_from_dict(bad, "x.toml")
    with pytest.raises(PricingError, match="as_of must be a TOML date"):
        pricing.table_from_dict({**good, "as_of": "2026"}, "x.toml")


# ---------------------------------------------------------------- properties

counts = st.integers(min_value=0, max_value=2_000_000)
usages = st.fixed_dictionaries({"inputTokens": counts, "outputTokens": counts,
                                "cacheReadInputTokens": counts, "cacheWriteInputTokens": counts})
ids = st.sampled_from([f"{p}{m}" for m in (*CLAUDE_45, SONNET37, NOVA) for p in ("", "us.", "global.")
                       if (m, {"": "region", "us.": "geo", "global.": "global"}[p]) in default_table().rows])
ttls = st.sampled_from(["5m", "1h"])
KEYS = ("inputTokens", "outputTokens", "cacheReadInputTokens", "cacheWriteInputTokens")


def _ttl_for(mid: str, ttl: str) -> str:
    return "5m" if NOVA in mid else ttl


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


@settings(max_examples=200, deadline=None)
@given(ids, usages, ttls)
def test_cost_is_non_negative_and_batch_is_exactly_half(mid, u, ttl):
    ttl = _ttl_for(mid, ttl)
    c = cost(mid, u, cache_ttl=ttl)
    assert c >= 0
    assert _close(cost(mid, u, cache_ttl=ttl, batch=True), c / 2)


@settings(max_examples=200, deadline=None)
@given(ids, usages, usages, ttls)
def test_cost_is_linear_in_token_counts(mid, a, b, ttl):
    ttl = _ttl_for(mid, ttl)
    both = {k: a[k] + b[k] for k in KEYS}
    assert _close(cost(mid, both, cache_ttl=ttl), cost(mid, a, cache_ttl=ttl) + cost(mid, b, cache_ttl=ttl))
    assert _close(cost(mid, {k: 3 * a[k] for k in KEYS}, cache_ttl=ttl), 3 * cost(mid, a, cache_ttl=ttl))


@settings(max_examples=200, deadline=None)
@given(ids, usages, st.sampled_from(KEYS), st.integers(min_value=1, max_value=100_000), ttls)
def test_cost_is_monotone_in_each_count(mid, u, key, extra, ttl):
    ttl = _ttl_for(mid, ttl)
    more = {**u, key: u[key] + extra}
    assert cost(mid, more, cache_ttl=ttl) > cost(mid, u, cache_ttl=ttl)


@settings(max_examples=100, deadline=None)
@given(st.sampled_from([*CLAUDE_45, SONNET37]), st.sampled_from(["", "us.", "global."]), usages)
def test_one_hour_write_costs_at_least_five_minute_write(mid, prefix, u):
    if (prefix == "global." and mid == SONNET37) or (prefix == "" and mid in (SONNET, OPUS)):
        return  # those profiles do not exist
    assert cost(prefix + mid, u, cache_ttl="1h") >= cost(prefix + mid, u, cache_ttl="5m")


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(CLAUDE_45), st.sampled_from(["", "us.", "eu."]), usages, ttls, st.booleans())
def test_global_is_never_dearer_than_regional_for_claude_45(mid, regional_prefix, u, ttl, batch):
    if regional_prefix == "" and mid != HAIKU:
        return  # Sonnet and Opus 4.5: no in-Region (bare id) row
    assert cost(f"global.{mid}", u, cache_ttl=ttl, batch=batch) <= cost(regional_prefix + mid, u, cache_ttl=ttl, batch=batch)


# ---------------------------------------------------------------- `loadgen pricing`

def test_pricing_command_prints_the_catalog(capsys):
    assert cli.main(["pricing"]) == 0
    out = capsys.readouterr().out
    assert "as of 2026-12-02" in out
    line = next(ln for ln in out.splitlines() if ln.startswith(HAIKU) and " global " in ln)
    assert "1.00" in line and "5.00" in line and "1.25" in line
    assert "https://platform.claude.com/docs/en/docs/about-claude/pricing" in out
    assert len([ln for ln in out.splitlines() if ln.startswith(SONNET37)]) == 2  # no global row


SCENARIO = """\
name = "ref"
seed = 1
duration = "1m"

[model]
id = "anthropic.claude-haiku-4-5-20251001-v1:0"

[workload]
kind = "single"
prefix_tokens = 5000
question_tokens = 12
output_tokens = { dist = "lognormal", median = 80, p90 = 120 }

[arrivals]
kind = "constant"
rate = "1/s"

[[arms]]
name = "a"
profile = "geo"

[[pricing]]
model_id = "us.anthropic.claude-haiku-4-5-20251001-v1:0"
input_per_mtok = 1.0
output_per_mtok = 5.0
"""


def test_pricing_command_with_a_real_scenario_file(tmp_path, capsys):
    """DESIGN.md's scenario shape with a [[pricing]] override: the us. row changes, no other."""
    path = tmp_path / "ref.toml"
    path.write_text(SCENARIO)
    rc = cli.main(["pricing", "--scenario", str(path)])
    out, err = capsys.readouterr()
    assert rc == 0, err
    geo = next(ln for ln in out.splitlines() if ln.startswith(HAIKU) and " geo " in ln)
    assert "1.00" in geo and "override" in geo and "scenario override" in out
    glob_ = next(ln for ln in out.splitlines() if ln.startswith(HAIKU) and " global " in ln)
    assert "override" not in glob_


def test_pricing_command_reports_a_bad_scenario_file_and_exits_2(tmp_path, capsys):
    path = tmp_path / "bad.toml"
    path.write_text(SCENARIO.replace("input_per_mtok = 1.0", "input_per_mtok = -1.0"))
    assert cli.main(["pricing", "--scenario", str(path)]) == 2
    out, err = capsys.readouterr()
    assert f"{path}:24: pricing[0].input_per_mtok: expected a number >= 0, got -1.0" in err
    assert out == ""


def test_format_usd_shows_fractions_of_a_cent_below_the_switch_and_cents_above():
    assert pricing.format_usd(0.8893) == "$0.8893"
    assert pricing.format_usd(9.99994) == "$9.9999"
    assert pricing.format_usd(12.5) == "$12.50"
    assert pricing.format_usd(1234.5) == "$1,234.50"
    assert pricing.format_usd(-12.5) == "$-12.50"           # a delta: the switch is on the size
    # a plan's estimates switch to cents from $1
    assert pricing.format_usd(0.5, cents_from=1) == "$0.5000"
    assert pricing.format_usd(3.04, cents_from=1) == "$3.04"


# The run's pricer prices an on-demand usage without cacheDetails on its own fast path;
# it must give the very floats breakdown() gives (summary.json sums them), and the same errors.
optional_counts = st.one_of(counts, st.none(), st.floats(min_value=0, max_value=2e6, allow_nan=False))


@settings(max_examples=300, deadline=None)
@given(ids, st.dictionaries(st.sampled_from(KEYS), optional_counts), ttls, st.sampled_from([None, "priority"]))
def test_pricer_gives_breakdowns_floats_to_the_last_bit(mid, u, ttl, tier):
    ttl = _ttl_for(mid, ttl)
    table = default_table()
    try:
        want = dataclasses.asdict(breakdown(mid, u, cache_ttl=ttl, tier=tier))
    except PricingError as e:
        with pytest.raises(PricingError, match=re.escape(str(e))):
            pricing.pricer(table)(mid, u, ttl, tier)
        return
    got = pricing.pricer(table)(mid, u, ttl, tier)
    assert list(got) == list(want)
    assert [v.hex() for v in got.values()] == [float(v).hex() for v in want.values()]


@pytest.mark.parametrize("usage, msg", [
    ({"inputTokens": -1}, "inputTokens must be a token count >= 0"),
    ({"outputTokens": "12"}, "outputTokens must be a token count"),
    ({"cacheWriteInputTokens": True}, "cacheWriteInputTokens must be a token count"),
])
def test_pricer_rejects_bad_usage_as_breakdown_does(usage, msg):
    with pytest.raises(PricingError, match=msg):
        pricing.pricer(default_table())(HAIKU, usage, "5m")
