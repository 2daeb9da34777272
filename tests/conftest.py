"""Shared by every test module: plots are drawn where a test can see them, not elsewhere.

Every `run` or `simulate` a test calls in this process ends by drawing four matplotlib
figures (loadgen/report/plots.py): about 0.85 s of CPU each time. Measured over one suite
run (2026-12-03): 151 draws, 127 CPU-seconds of the suite's ~400, the largest single cost.
A plot that fails is only a warning on stderr, never a failed command or a missing
summary (loadgen/report/artifacts.py), so a test that reads no plot, no report.html
figure and no warning asserts nothing about them. In the modules of PLOTS_NOT_READ (none
mentions plots, png, html or warnings, and none asserts an empty stderr) write_plots
writes no figure; report.html is still written, without figures.

The figures are drawn and checked where they are the subject: test_plots.py,
test_report*.py, test_memory_bounded.py, the modules that read warnings or stderr
(test_run_cli.py, test_cli_ci.py, test_quota_reservation.py, ...), and every `loadgen`
subprocess a test starts, whatever its module.
"""

from __future__ import annotations

import pytest

from loadgen.report import plots

PLOTS_NOT_READ = frozenset({
    "test_api", "test_batch_arms", "test_cache_lookback", "test_cache_readiness", "test_count_tokens",
    "test_emulator_config", "test_emulator_disconnect", "test_emulator_quotas", "test_golden_summary",
    "test_levers", "test_metrics", "test_outputs_cloudwatch", "test_outputs_intervals", "test_partial_usage",
    "test_pricing", "test_run_endpoint", "test_run_workers", "test_runner_arms", "test_runner_errors",
    "test_runner_retries", "test_simulate", "test_simulate_maxrate", "test_soak_virtual", "test_thresholds",
})


@pytest.fixture(autouse=True)
def _plots_only_where_read(request, monkeypatch):
    if request.module.__name__.rsplit(".", 1)[-1] in PLOTS_NOT_READ:
        monkeypatch.setattr(plots, "write_plots", lambda *args, **kwargs: [])
