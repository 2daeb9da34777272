"""The `--output jsonl` stream: one JSON object per interval and arm, written as each
interval closes (results/intervals.py), for tools that ingest a run while it goes
(jq, Vector, Telegraf's file input, a notebook tailing the file). Every interval gets a
line per arm, an arm without attempts in it too (zeros, null latencies), so a reader
sees a regular time series. The line's keys: docs/results-format.md, "intervals.jsonl".
"""

from __future__ import annotations

import json
from typing import Sequence, TextIO

from loadgen.results.intervals import Interval

INTERVALS_FILE = "intervals.jsonl"
_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode


class JsonlStream:
    """The interval-stream sink: rows of `arms` to `stream`, flushed per interval.
    `owned`: close the stream at the end (a file), or leave it open (stdout)."""

    def __init__(self, stream: TextIO, arms: Sequence[str], *, owned: bool) -> None:
        self.stream, self.arms, self.owned = stream, tuple(arms), owned
        self.lines = 0

    def on_interval(self, iv: Interval) -> None:
        self.stream.write("".join(_encode(iv.row(arm)) + "\n" for arm in self.arms))
        self.stream.flush()
        self.lines += len(self.arms)

    def close(self) -> None:
        if self.owned:
            self.stream.close()
        else:
            self.stream.flush()
