"""The shipped three-levers scenario (scenarios/levers.toml): one workload as no-cache,
cached 5m, cached 1h, global-profile and batch arms, under `simulate` and `run`."""

from __future__ import annotations

from pathlib import Path

import pytest

from loadgen.commands.cli import main
from result_files import only_dir, read_results as read

LEVERS = Path(__file__).resolve().parent.parent / "scenarios" / "levers.toml"
ARMS = ["on-demand", "cached-5m", "cached-1h", "global-5m", "batch"]


def _accounted(arms: dict) -> None:
    """Every arm sent the same requests and booked each one: ok or a final failure."""
    sent = {name: arms[name]["requests"]["sent"] for name in ARMS}
    assert len(set(sent.values())) == 1 and sent["batch"] >= 100, sent  # Bedrock's batch minimum
    for name in ARMS:
        r = arms[name]["requests"]
        assert r["ok"] + r["throttled"] + r["error"] + r["timeout"] == r["sent"], (name, r)


def test_levers_simulate_orders_the_levers(tmp_path: Path) -> None:
    assert main(["simulate", str(LEVERS), "--out", str(tmp_path), "--quiet"]) == 0
    summary, _ = read(only_dir(tmp_path))
    arms = summary["arms"]
    assert sorted(arms) == sorted(ARMS)
    _accounted(arms)
    per_1000 = {name: arms[name]["cost_usd"]["per_1000"] for name in ARMS}
    assert per_1000["batch"] < per_1000["on-demand"]
    assert per_1000["cached-5m"] < per_1000["on-demand"]
    assert per_1000["cached-1h"] < per_1000["on-demand"]
    assert arms["batch"]["mode"] == "batch" and arms["global-5m"]["model_id"].startswith("global.")


@pytest.mark.slow
def test_levers_run_accounts_for_every_request(tmp_path: Path) -> None:
    # The whole scenario on the warp clock (time_scale = 100): about 8 s of wall time.
    assert main(["run", str(LEVERS), "--out", str(tmp_path), "--quiet"]) == 0
    summary, _ = read(only_dir(tmp_path))
    assert sorted(summary["arms"]) == sorted(ARMS)
    _accounted(summary["arms"])
    assert summary["arms"]["batch"]["requests"]["ok"] == summary["arms"]["batch"]["requests"]["sent"]
