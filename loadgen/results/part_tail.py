"""The attempts a split run's workers have written so far, read as their parts grow.

The parent of `run --workers N` / `--cluster` sends nothing itself; for the live outputs
(`--output jsonl`, CloudWatch, the HDR interval logs beside them) it needs every
attempt as the workers complete them. Each worker appends its attempts to its part's
requests.jsonl (`parts/worker-<i>/`, results/merge.py), which reaches the disk at least
every `directory.FLUSH_EVERY_S` (a Ray segment's lines are pulled into the same place),
so reading each part from where the last read stopped gives every attempt once, a
second or two after it completed, through the same record -> Attempt fold and prices
that rebuild a killed run (results/rebuild.py). A part's lines are in completion order,
so once a line ending at E is read every earlier-ending attempt of that part has been:
`read_until` says up to when every part has been read, and the parent closes intervals
there (not a fixed delay behind the clock: each open interval holds ~1.6 MB of
histograms per arm, and a fixed delay at a high time scale keeps many open). A line is
taken only once it is whole: a chunk that ends mid-line keeps the rest for the next
read, and at the end a torn last line (a worker killed mid-write) is left out, as
`directory.load_attempts` leaves it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

from loadgen.engine.record import Attempt
from loadgen.results.directory import REQUESTS_FILE
from loadgen.results.metrics import ArmInfo
from loadgen.results.rebuild import attempt_from_record, cost_buckets


class PartTail:
    """Reads the parts' requests.jsonl from where it stopped (one offset per part)."""

    def __init__(self, parts: Sequence[Path], scenario: Any) -> None:
        self._files = [Path(p) / REQUESTS_FILE for p in parts]
        self._offsets = [0] * len(self._files)
        self._rest = [b""] * len(self._files)  # a line's start, when a read ended mid-line
        self._price = cost_buckets(scenario)
        self._infos = {a.name: ArmInfo.from_arm(a) for a in scenario.arms}
        self.read_lines = 0   # attempts handed out so far
        self._ends = [float("-inf")] * len(self._files)  # per part: the latest end read

    def read(self) -> Iterator[tuple[Attempt, Mapping[str, float] | None]]:
        """(attempt, its cost buckets) for every whole line written since the last read."""
        for i, path in enumerate(self._files):
            try:
                with open(path, "rb") as f:
                    f.seek(self._offsets[i])
                    data = f.read()
            except FileNotFoundError:  # the worker has not started writing yet
                continue
            if not data:
                continue
            self._offsets[i] += len(data)
            data = self._rest[i] + data
            cut = data.rfind(b"\n") + 1
            self._rest[i] = data[cut:]
            for line in data[:cut].splitlines():
                if line.strip():
                    a, costs = self._attempt(json.loads(line))
                    if a.end > self._ends[i]:
                        self._ends[i] = a.end
                    yield a, costs

    def read_until(self, floor: float) -> float:
        """The scenario time before which every part's attempts have been read, as far as
        their lines show: each part's latest end read, or `floor` (now less the longest an
        attempt takes to reach the parent) for a part that wrote nothing newer."""
        return min((max(e, floor) for e in self._ends), default=floor)

    def finish(self) -> Iterator[tuple[Attempt, Mapping[str, float] | None]]:
        """The last read, once every worker has ended: what is left, a torn last line left out."""
        yield from self.read()
        self._rest = [b""] * len(self._files)

    def _attempt(self, record: Mapping[str, Any]) -> tuple[Attempt, Mapping[str, float] | None]:
        a = attempt_from_record(record)
        self.read_lines += 1
        info = self._infos.get(a.arm)
        return a, (self._price(a, info) if self._price is not None and info is not None else None)
