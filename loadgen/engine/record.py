"""One attempt at one request: the unit everything downstream counts.

The runner makes one Attempt per HTTP call (a retry is a new Attempt with
attempt+1); loadgen.results writes them to requests.jsonl and folds them into
histograms and counters. Times are scenario seconds since run start; latencies
derived from them are measured from the *intended* start (no coordinated omission).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from loadgen.engine.frozen import built

STATUSES = ("ok", "throttled", "error", "timeout")
CACHE_STATES = ("cold", "warm", "none")


@dataclass(frozen=True)
class Attempt:
    arm: str
    session: int              # session index (open loop: the request index)
    turn: int                 # turn within the session (open loop: 0)
    attempt: int              # 1 for the first try, 2.. for retries
    intended: float           # scenario s: when the schedule wanted this request sent
    start: float              # scenario s: when it was actually sent
    first_token: float | None # scenario s: first content delta (non-stream: = end on success)
    end: float                # scenario s: response complete or failed
    status: str               # one of STATUSES
    error_code: str | None    # e.g. "ThrottlingException"
    model_id: str
    profile: str              # region | geo | global
    region: str | None        # Region that served it, where known
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read: int = 0
    cache_write: int = 0
    cache_write_5m: int = 0
    cache_write_1h: int = 0
    cache_state: str = "none"         # observed: cold (write, no read), warm (read), none
    cache_predicted: str = "none"     # the client-side model's prediction before sending
    # the prediction could go either way: a write of the same prefix was in flight, or failed
    # before a reply, when this was sent (a warm observation then is not a mismatch)
    cache_race: bool = False
    gap_s: float | None = None        # scenario s since the previous use of this cache key
    cost_usd: float = 0.0
    # True: a failed attempt whose response had begun (first_token set). Bedrock sends no usage
    # then; output_tokens counts the delivered deltas (measured), the input/cache split is
    # loadgen's estimate from its cache model, and cost_usd prices both (docs/emulator.md)
    usage_estimated: bool = False
    wall_start: float = 0.0           # Unix time (s) at send, for correlating with logs
    request_id: str | None = None
    stop_reason: str | None = None
    message: str | None = None        # error message, truncated
    quota: str | None = None          # throttles by loadgen's emulator: the limit, "tpm us-east-1" (docs/results-format.md)
    # Batch arms only (mode = "batch", loadgen.engine.batch_arm): one attempt per record.
    # start = intended (the record is written when it arrives), end = when its result was
    # read (or the record given up); first_token stays None (batch has no TTFT).
    batch_status: str | None = None   # the job's last status seen, or "NotSubmitted"
    batch_job: str | None = None      # job id (the ARN's last segment); None: never submitted
    batch_submit: float | None = None # scenario s: the job was submitted
    queue_wait_s: float | None = None # s from submit to the first poll that saw InProgress (or later)
    job_s: float | None = None        # s from submit to the job's end (None: it did not end)
    cost_stacked_usd: float | None = None    # USD if cache pricing stacks with batch
    cost_unstacked_usd: float | None = None  # USD if it does not (cache tokens as input)


FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Attempt))  # in declaration order


def attempt_from(d: dict[str, Any]) -> Attempt:
    """The Attempt whose fields are `d`, built in one step (engine/frozen.py): `d` must hold
    every field of Attempt, in declaration order (requests.jsonl writes `__dict__` in that
    order), and becomes the Attempt's `__dict__` (the caller keeps no reference to it).
    A dict display, not a function of ~30 keywords, which costs ~2 us more; the runner
    makes one per attempt. tests/test_metrics.py checks the runner's Attempts equal the
    dataclass's own."""
    if tuple(d) != FIELDS:  # names and order (~0.5 us): a misspelt key must not pass
        raise TypeError(f"attempt_from(): expected the {len(FIELDS)} fields of Attempt in order, got {len(d)}: "
                        f"missing {sorted(set(FIELDS) - set(d))}, unknown {sorted(set(d) - set(FIELDS))}")
    return built(Attempt, d)


# error_code of a batch record whose output line held an `error` (the model refused the
# record); every other failed batch record was not completed (its job failed, expired or
# was stopped, or the run ended first).
BATCH_RECORD_ERROR = "BatchRecordError"

# The batch fields above, left out of on-demand lines of requests.jsonl (all None there).
BATCH_FIELDS = ("batch_status", "batch_job", "batch_submit", "queue_wait_s", "job_s",
                "cost_stacked_usd", "cost_unstacked_usd")
# An on-demand attempt's batch fields (all None), the last fields of an Attempt (attempt_from).
ON_DEMAND = dict.fromkeys(BATCH_FIELDS)


def observed_cache_state(cache_read: int, cache_write: int, expected_read: int = 0) -> str:
    """warm / cold / none from a response's usage.

    warm: the call read from the cache, and the read covers the longest prefix this
    client had cached before (`expected_read` tokens, 0 if none). cold: it wrote
    to the cache, or read less than that (an agent turn that had to write its whole
    history again after a long gap reads only the shared system prompt: for the
    TTL question that turn is cold). none: no cache fields at all.
    """
    if cache_read > 0 and cache_read >= expected_read:
        return "warm"
    if cache_write > 0 or cache_read > 0:
        return "cold"
    return "none"
