"""The results directory: streaming, crash-safe writes that never overwrite.

    results/<scenario>-<YYYYmmddTHHMMSSZ>/
      scenario.toml            the exact input bytes
      requests.jsonl           one JSON line per attempt, appended as it completes
      histograms/<arm>.<metric>.hlog   HdrHistogram interval logs (values in us)
      run.json                 the run facts known at the start (clock, time scale, target ...)
      summary.json             Metrics.summary(), written atomically
      summary.txt              the text report

Durability: requests.jsonl lines are buffered in the process and handed to the kernel
at least every FLUSH_EVERY_S seconds (a background thread), whenever the buffer fills,
before any summary or histogram file is written, and at close. A run that ends, or is
stopped with Ctrl-C, has every attempt on disk; a process killed outright (SIGKILL,
os._exit, a crash) loses at most the attempts that completed in its last FLUSH_EVERY_S
seconds, and its last line may be torn (readers skip a torn last line). One write(2) per
line cost ~2-5 us of the generator's one core. No fsync: surviving power loss is not the
aim, and it would cost ~ms per flush. summary.json and summary.txt are written to a
temp file and renamed, so a reader never sees half a summary.

Nothing here reads the environment or the clock: the caller passes the time and
the content, so nothing but what the caller gives (never credentials) lands on disk.
"""

from __future__ import annotations

import json
import math
import os
import re
import threading
import weakref
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from hdrh.histogram import HdrHistogram
from hdrh.log import HistogramLogReader

from loadgen.engine.record import BATCH_FIELDS, Attempt
from loadgen.results.histograms import LATENCY_METRICS, new_histogram, start_log

REQUESTS_FILE = "requests.jsonl"
SCENARIO_FILE = "scenario.toml"
SUMMARY_FILE = "summary.json"
RUN_FILE = "run.json"
HISTOGRAM_DIR = "histograms"
PARTS_DIR = "parts"  # a run split over worker processes: parts/worker-<i>/ until merged (merge.py)

# Scenario seconds and Unix seconds to the microsecond; USD to 1e-9 (a nano-dollar
# is far below a single token's price, ~1e-6 USD).
_TIME_FIELDS = ("intended", "start", "first_token", "end", "gap_s", "wall_start")
# One encoder, built once: json.dumps with options builds a new one per call.
_encode_line = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")

# The longest a completed attempt's line stays in the process before it reaches the
# kernel (seconds): what a killed run can lose (docs/results-format.md).
FLUSH_EVERY_S = 1.0
# requests.jsonl's buffer: ~150 lines; a full buffer is written at once.
_BUFFER_BYTES = 1 << 16


def safe_name(name: str) -> str:
    """`name` reduced to ASCII letters, digits, '.', '_' and '-' (safe as a file name): never
    starting with '-' (a directory `--x-2026...` would read as an option to every shell tool)
    and at most 100 characters (file names stop at 255 bytes; suffixes follow)."""
    s = _UNSAFE.sub("_", name).strip("._").lstrip("-")[:100]
    return s or "run"


def attempt_line(a: Attempt) -> str:
    """One requests.jsonl line (with trailing newline) for `a`; times rounded to 1 us, USD to 1e-9."""
    d: dict[str, Any] = dict(a.__dict__)  # field order = declaration order
    if a.batch_status is None:  # an on-demand attempt: its lines stay as they were
        for name in BATCH_FIELDS:
            del d[name]
    for name in _TIME_FIELDS:
        v = d[name]
        if v is not None:
            d[name] = round(v, 6)
    d["cost_usd"] = round(d["cost_usd"], 9)
    return _encode_line(d) + "\n"


def _finite(obj: Any) -> Any:
    """JSON has no NaN/Infinity; turn them into null so every tool can read the file."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())  # once per file: the rename must not expose an empty file after a crash
    os.replace(tmp, path)


class DirectoryTaken(FileExistsError):
    """An exact results directory (`--results-dir`) that exists and is not empty."""


def claim_dir(path: str | Path) -> Path:
    """Make exactly `path` (its parents too) for a run's results; an existing empty
    directory is taken as it is (CI often makes it beforehand). DirectoryTaken if it
    holds anything (or is a file): results are never overwritten or mixed. The files
    inside are then opened exclusively ("x"), so a second run racing for the same
    empty directory fails too rather than sharing it."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.mkdir(p)
    except FileExistsError:
        if not p.is_dir():
            raise DirectoryTaken(f"{p} exists and is not a directory") from None
        if any(p.iterdir()):
            raise DirectoryTaken(f"{p} exists and is not empty: loadgen never overwrites results "
                                 "(name a new directory or remove this one)") from None
    return p


class ResultsDir:
    """One run's results directory. Use `ResultsDir.create(...)`; a context manager."""

    def __init__(self, path: Path, flush_every_s: float = FLUSH_EVERY_S) -> None:
        """`flush_every_s`: the longest (seconds) a written attempt stays in the process."""
        self.path = Path(path)
        # binary: a BufferedWriter has its own lock, so the flusher thread may flush it
        # while the event loop writes (a TextIOWrapper is not safe across threads)
        self._requests = open(self.path / REQUESTS_FILE, "xb", buffering=_BUFFER_BYTES)
        self.attempts_written = 0
        self._stop_flusher = threading.Event()
        # the thread holds the file weakly: a ResultsDir dropped without close() is still
        # closed (and flushed) by the garbage collector
        threading.Thread(target=_flush_until, args=(weakref.ref(self._requests), self._stop_flusher, flush_every_s),
                         name=f"loadgen-flush-{self.path.name}", daemon=True).start()

    @classmethod
    def create(cls, parent: str | Path, scenario_name: str, utc_now: datetime, *,
               exact: str | Path | None = None) -> "ResultsDir":
        """Make `parent/<scenario>-<YYYYmmddTHHMMSSZ>/` (a fresh directory, never reused).

        If that name exists (two runs in one second), `-2`, `-3`, ... is appended.
        `utc_now`: the run's start; a naive datetime is taken as UTC.
        `exact`: make exactly this directory instead (`--results-dir`; see `claim_dir`).
        """
        if exact is not None:
            return cls(claim_dir(exact))
        parent = Path(parent)
        parent.mkdir(parents=True, exist_ok=True)
        if utc_now.tzinfo is not None:
            utc_now = utc_now.astimezone(timezone.utc)
        base = f"{safe_name(scenario_name)}-{utc_now.strftime('%Y%m%dT%H%M%SZ')}"
        n = 1
        while True:
            path = parent / (base if n == 1 else f"{base}-{n}")
            try:
                os.mkdir(path)  # exclusive: fails if another run (or process) took the name
                break
            except FileExistsError:
                n += 1
        return cls(path)

    # ---- writes -----------------------------------------------------------------

    def write_scenario(self, source_text: str | bytes) -> None:
        """Copy the scenario file's exact content to scenario.toml."""
        data = source_text.encode("utf-8") if isinstance(source_text, str) else bytes(source_text)
        with open(self.path / SCENARIO_FILE, "xb") as f:
            f.write(data)

    def append(self, a: Attempt) -> None:
        """Append one attempt to requests.jsonl; it reaches the kernel within FLUSH_EVERY_S
        seconds (the module docstring says when else)."""
        self._requests.write(attempt_line(a).encode())
        self.attempts_written += 1

    def flush(self) -> None:
        """Hand every attempt appended so far to the kernel now."""
        if not self._requests.closed:
            self._requests.flush()

    def write_histograms(self, metrics, scenario_s: float | None = None,
                         wall_start: float | None = None) -> list[Path]:
        """Write histograms/<arm>.<metric>.hlog for every arm and latency metric.

        Each file is a standard HdrHistogram interval log holding one interval that
        covers the whole run: start 0, length `scenario_s` (scenario seconds; by
        default the span of the recorded attempts, `metrics.span_s()`),
        values in microseconds, Interval_Max in milliseconds. `wall_start` (Unix
        seconds) becomes the log's StartTime, making timestamps relative to it.
        """
        self.flush()  # never a figure on disk ahead of the attempts it counts
        if scenario_s is None:
            scenario_s = metrics.span_s()
        hdir = self.path / HISTOGRAM_DIR
        hdir.mkdir(exist_ok=True)
        written = []
        for arm in metrics.arm_names:
            for metric in LATENCY_METRICS:
                h = metrics.histogram(arm, metric)
                p = hdir / f"{safe_name(arm)}.{metric}.hlog"
                with open(p, "x", encoding="utf-8") as f:
                    w = start_log(f, arm, metric, wall_start)
                    # start 0.0 makes hdrh fall back to the histogram's own start stamp (0
                    # for ours); the end is given explicitly.
                    w.output_interval_histogram(h, 0.0, max(float(scenario_s), 1e-6), max_value_unit_ratio=1000.0)
                written.append(p)
        return written

    def write_run_facts(self, facts: dict) -> None:
        """run.json: the run facts known before the first request (target, clock, time
        scale, seed ...), so a run killed before summary.json keeps them: the flags that
        chose them are in no other file. Atomic, like summary.json."""
        text = json.dumps(_finite(facts), indent=2, ensure_ascii=False, allow_nan=False) + "\n"
        _atomic_write(self.path / RUN_FILE, text.encode("utf-8"))

    def write_summary(self, summary: dict) -> None:
        """summary.json: indent 2, NaN/inf as null, atomic (temp file + rename)."""
        self.flush()  # a summary on disk has its attempts on disk (report reads them next)
        text = json.dumps(_finite(summary), indent=2, ensure_ascii=False, allow_nan=False) + "\n"
        _atomic_write(self.path / SUMMARY_FILE, text.encode("utf-8"))

    def write_text(self, name: str, text: str) -> None:
        """Write `text` to a plain file `name` (e.g. summary.txt) in the results dir, atomically."""
        if name != os.path.basename(name) or name.startswith(".") or not name:
            raise ValueError(f"results file name must be a plain file name like 'summary.txt', got {name!r}")
        _atomic_write(self.path / name, text.encode("utf-8"))

    def close(self) -> None:
        self._stop_flusher.set()
        if not self._requests.closed:
            self._requests.close()

    def __enter__(self) -> "ResultsDir":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _flush_until(ref: "weakref.ref[Any]", stop: threading.Event, every_s: float) -> None:
    """The flusher thread: flush the file every `every_s` seconds until `stop` is set or
    the file is gone."""
    while not stop.wait(every_s):
        f = ref()
        if f is None:
            return
        try:
            f.flush()
        except (OSError, ValueError):  # closed meanwhile, or the disk failed: the writer sees it too
            return
        finally:
            del f


# ---- reading back (report, compare) ------------------------------------------------


def load_attempts(results_dir: str | Path) -> Iterator[dict]:
    """The attempts in requests.jsonl, as dicts, in file order.

    A torn last line (the process died mid-write) is skipped; a bad line anywhere
    else is an error naming file and line. A run split over worker processes whose
    parent died before merging them (results/merge.py) has an empty requests.jsonl and
    `parts/worker-<i>/requests.jsonl`: then those are read, part after part.
    """
    p = Path(results_dir) / REQUESTS_FILE
    n = 0
    for record in _read_attempts(p):
        n += 1
        yield record
    if n == 0:
        for part in sorted((Path(results_dir) / PARTS_DIR).glob("worker-*/" + REQUESTS_FILE),
                           key=lambda q: int(q.parent.name.rsplit("-", 1)[1])):
            yield from _read_attempts(part)


def _read_attempts(p: Path) -> Iterator[dict]:
    with open(p, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                if not line.endswith("\n"):
                    return  # only the last line can lack its newline: torn by a kill
                raise ValueError(f"{p}:{lineno}: not a JSON attempt record: {line[:80]!r}") from None
            yield record


def load_summary(results_dir: str | Path) -> dict:
    """summary.json of a results directory, with a clear error if the run never finished."""
    p = Path(results_dir) / SUMMARY_FILE
    try:
        with open(p, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise FileNotFoundError(
            f"{p}: no summary.json; expected a finished loadgen results directory "
            f"(an interrupted run may have only {REQUESTS_FILE})"
        ) from None


def load_run_facts(results_dir: str | Path) -> dict | None:
    """run.json of a results directory as a dict; None when it is missing or unreadable
    (a directory written before run.json existed, or damaged by hand)."""
    try:
        with open(Path(results_dir) / RUN_FILE, encoding="utf-8") as f:
            facts = json.load(f)
    except (OSError, ValueError):
        return None
    return facts if isinstance(facts, dict) else None


def read_histogram(path: str | Path) -> HdrHistogram:
    """All intervals of an .hlog file added into one histogram (values in us)."""
    total = new_histogram()
    reader = HistogramLogReader(str(path), new_histogram())
    try:
        while reader.add_next_interval_histogram(total) is not None:
            pass
    finally:
        reader.close()
    return total
