"""HDR interval logs written as a run goes: histograms/<arm>.<metric>.hlog holding one
interval histogram per fixed interval of scenario time (results/intervals.py), in
HdrHistogram's standard log format (1.2) that its HistogramLogProcessor, plotter and
every port's HistogramLogReader read.

Each file is opened (header written) when the run starts and gets one line per interval
in which its arm had attempts (an interval without any is left out: the format's
timestamps say where each line belongs); the lines are flushed as each interval closes.
While the run goes a file is named `<arm>.<metric>.hlog.part`, renamed to `.hlog` when
the run ends normally: a killed run keeps the intervals closed before it died in the
`.part` files, and `report` (which reads `.hlog` files only) rebuilds its figures from
requests.jsonl, which holds every attempt, instead of trusting logs missing their end. Timestamps are scenario
seconds relative to the `#[StartTime: ...]` line (the run's wall-clock start); values
are microseconds, the Interval_Max column milliseconds. Adding every interval of a
file gives the run's whole histogram of that metric (`directory.read_histogram`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence, TextIO

from hdrh.log import HistogramLogWriter

from loadgen.results.directory import HISTOGRAM_DIR, safe_name
from loadgen.results.histograms import LATENCY_METRICS, start_log
from loadgen.results.intervals import Interval

PART = ".part"   # the suffix of a log still being written


class IntervalLogs:
    """The interval-log sink: one open .hlog per arm and latency metric under `results_path`."""

    def __init__(self, results_path: Path, arms: Sequence[str], wall_start: float | None) -> None:
        hdir = Path(results_path) / HISTOGRAM_DIR
        hdir.mkdir(exist_ok=True)
        self._files: list[TextIO] = []
        self._paths: list[Path] = []
        self._writers: dict[tuple[str, str], HistogramLogWriter] = {}
        try:
            for arm in arms:
                for metric in LATENCY_METRICS:
                    path = hdir / f"{safe_name(arm)}.{metric}.hlog"
                    f = open(path.with_name(path.name + PART), "x", encoding="utf-8")
                    self._files.append(f)
                    self._paths.append(path)
                    self._writers[arm, metric] = start_log(f, arm, metric, wall_start)
        except BaseException:
            self.close()
            raise
        self.lines = 0

    def on_interval(self, iv: Interval) -> None:
        if not iv.arms:
            return
        for arm, ai in iv.arms.items():
            for metric in LATENCY_METRICS:
                h = ai.metrics.histogram(arm, metric)
                # start 0.0 would make hdrh use the histogram's own start stamp (0 here: the same)
                self._writers[arm, metric].output_interval_histogram(
                    h, iv.start_s, iv.end_s, max_value_unit_ratio=1000.0)
                self.lines += 1
        for f in self._files:
            f.flush()

    def close(self) -> None:
        """The run ended: close every file and give it its final name (never over another file)."""
        for f, path in zip(self._files, self._paths):
            if not f.closed:
                f.close()
                if not path.exists():
                    os.replace(path.with_name(path.name + PART), path)
