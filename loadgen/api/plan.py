"""`loadgen validate`: parse, check and describe a scenario without sending anything.

`plan(scenario)` is pure: it draws the same seeded schedule the runner will send
(same arrival offsets, same sizes, same session turn counts and think times, using
the runner's seed strings), then per arm counts requests, finds the busiest minute
and prices the run twice: all-cold (every call writes its cache checkpoint) and
all-warm (every call reads the longest cached prefix it could), plus an expected
figure: entries live exactly their TTL from their last use, so the schedule's own gaps
decide hit or miss (early eviction and Region spill are not modelled). A real run lands
between all-warm and all-cold; the run measures where. plan_text.py puts a plan in words.

Simplifications, stated in the printed plan: a session's next turn starts one think
time after the previous turn *started* (model latency is not known before a run),
token counts use the workload's sizes (tokens.py's rule), not the exact request text,
and replies are cut at max_tokens as the model would.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from loadgen.catalog import pricing
from loadgen.engine import schedule as schedule_of
from loadgen.catalog.models import TTL_SECONDS, lookup
from loadgen.emulator.config import EmulatorConfig
from loadgen.scenario import Arm, Scenario
from loadgen.results.series import rolling_peak

WINDOW_S = 60.0  # Bedrock quotas are per minute

# Drawing the schedule costs ~40 us a request (a seeded generator per request, as the runner
# draws them), so above this many requests per arm the plan is estimated from a thinned
# sample of about this size (Process.thinned): validate stays near a second at any size.
EXACT_PLAN_MAX = 20_000


@dataclass(frozen=True)
class DryRequest:
    """One request of the shared schedule (the same for every arm)."""

    t: float                 # intended start, scenario seconds
    session: int             # open loop: the request index
    turn: int
    new_tokens: int          # tokens below the checkpoint that are new this turn (question or user turn)
    history_tokens: int      # agent: earlier turns' user and reply tokens (0 for single)
    prev_cached: int         # agent: tokens up to the previous turn's checkpoint (0: none)
    output_tokens: int       # the output size asked for


@dataclass(frozen=True)
class ArmPlan:
    """What one arm will send and what it may cost. Tokens are counts; costs USD."""

    arm: Arm
    requests: int
    input_tokens: int               # total input over the run (cached or not)
    output_tokens: int
    cache_effective: bool           # False when the prefix is below the model's cache minimum
    peak_rpm: int                   # most requests in any 60 s window
    peak_tpm_reserved: int          # most input + max_tokens reserved at start in any 60 s window
    peak_tpm_charged_cold: int      # input + cache writes + output x burndown, all cold
    peak_tpm_charged_warm: int      # the same with every cacheable prefix read (reads are not charged)
    cost_cold_usd: float
    cost_warm_usd: float
    cost_expected_usd: float        # with the schedule's own gaps against the TTL (no early eviction)
    expected_warm_ratio: float      # share of requests warm in that estimate (the runner's rule)
    expected_read_share: float      # cache reads / (reads + writes) in that estimate, tokens
    reserve_mean: float = 0.0       # tokens reserved at start per request (input + max_tokens), mean
    reserve_max: int = 0            # the same, largest request
    quota_tpm: int = 0              # the emulator's TPM quota for this arm's model id (0: none/unknown)

    @property
    def per_1000_cold(self) -> float:
        return self.cost_cold_usd / self.requests * 1000 if self.requests else 0.0

    @property
    def per_1000_expected(self) -> float:
        return self.cost_expected_usd / self.requests * 1000 if self.requests else 0.0

    @property
    def per_1000_warm(self) -> float:
        return self.cost_warm_usd / self.requests * 1000 if self.requests else 0.0


@dataclass(frozen=True)
class Plan:
    scenario: Scenario
    traffic: str                    # one line, e.g. "Poisson arrivals at 5/s"
    sessions: int | None            # agent scenarios: sessions started within the duration
    requests: int                   # per arm (every arm gets the same schedule)
    peak_rpm: int
    arms: tuple[ArmPlan, ...]
    prices_note: str
    sample: float = 1.0             # share of the schedule drawn; < 1: figures estimated from a thinned sample


# --------------------------------------------------------------------------- schedule

def schedule(sc: Scenario) -> tuple[list[DryRequest], int | None]:
    """The seeded requests every arm will send, and the session count (None: open loop)."""
    w = sc.workload
    out: list[DryRequest] = []
    if sc.arrivals is not None:
        for i, offset, sizes in schedule_of.open_loop(sc):  # exactly the runner's draws
            out.append(DryRequest(offset, i, 0, sizes.question_tokens, 0, 0, sizes.output_tokens))
        return out, None
    starts = list(schedule_of.session_starts(sc))
    for index, start in enumerate(starts):
        draws = schedule_of.SessionDraws(sc, index)
        t, history, prev = start, 0, 0
        for turn in range(draws.turns):
            if t >= sc.duration:
                break
            sizes = draws.sizes()
            out.append(DryRequest(t, index, turn, sizes.turn_tokens, history, prev, sizes.output_tokens))
            prev = w.prefix_tokens + history + sizes.turn_tokens
            # the reply joins the history, cut at maxTokens ([model]; arms overriding it differ a little)
            history += sizes.turn_tokens + min(sizes.output_tokens, sc.model.max_tokens)
            # turns start one think time apart: model latency is not known before a run
            t += draws.think_time()
    out.sort(key=lambda r: r.t)
    return out, len(starts)


def _cacheable(sc: Scenario, arm: Arm, req: DryRequest, min_tokens: int) -> tuple[int, int, int]:
    """(total input, tokens up to the last valid checkpoint, tokens up to the longest one a hit could read).

    single: one checkpoint after the system prompt. agent: checkpoints after the system
    prompt, after the previous turn's user message ("kept"; "moving" reaches it through the
    model's cache lookback) and after this turn's (workload.py).
    A checkpoint below the model's minimum is ignored by Bedrock.
    """
    prefix = sc.workload.prefix_tokens
    total = prefix + req.history_tokens + req.new_tokens
    if not arm.cache:
        return total, 0, 0
    sys_ok = prefix if prefix >= min_tokens else 0
    if sc.workload.kind == "single":
        return total, sys_ok, sys_ok
    cached = total if total >= min_tokens else sys_ok
    readable = req.prev_cached if req.prev_cached >= min_tokens else sys_ok
    if sc.workload.checkpoint_pattern == "moving" and lookup(arm.model_id).cache_lookback_blocks < 3:
        # no checkpoint at the previous turn's end, and no lookback reaching it (2 block
        # positions back, workload.py): only the system prompt can be read
        readable = sys_ok
    return total, cached, min(readable, cached)


def _expected_reads(sc: Scenario, arm: Arm, reqs: list[DryRequest],
                    min_tokens: int) -> list[tuple[int, bool]]:
    """(tokens read, warm) per request if entries live exactly their TTL from their last use
    and nothing is evicted early: the schedule's own gaps decide.

    Like the emulator, every request refreshes (or rewrites) the system-prompt entry.
    `warm` follows the runner's rule (expectations.py): a turn is warm only if the
    longest prefix cached before (the session's previous turn) is still alive; reading
    just the system prompt under an expired history is a re-write, so cold.
    """
    ttl = TTL_SECONDS[arm.cache_ttl]
    prefix = sc.workload.prefix_tokens
    sys_last: float | None = None
    turn_last: dict[int, float] = {}   # session -> start of its previous turn
    out = []
    for r in reqs:
        total, cached, readable = _cacheable(sc, arm, r, min_tokens)
        read, warm = 0, False
        if cached:
            sys_alive = prefix >= min_tokens and sys_last is not None and r.t - sys_last < ttl
            prev = turn_last.get(r.session)
            has_history = sc.workload.kind == "agent" and readable > prefix
            if has_history and prev is not None and r.t - prev < ttl:
                read, warm = readable, True
            elif sys_alive:
                read, warm = min(prefix, cached), not has_history
            if prefix >= min_tokens:
                sys_last = r.t
            turn_last[r.session] = r.t
        out.append((read, warm))
    return out


def _share(usage: dict[str, int]) -> float:
    r, w = usage.get("cacheReadInputTokens", 0), usage.get("cacheWriteInputTokens", 0)
    return r / (r + w) if r + w else 0.0


def plan(scenario: Scenario) -> Plan:
    """The dry plan of a parsed scenario (pure: no clock, no network; seeded by the scenario).

    Up to EXACT_PLAN_MAX requests per arm it draws the very schedule the runner sends.
    Above that it draws a thinned copy holding a share f of the arrivals (same shape in
    time), scales request, token and cost totals up to the full count, and reads peaks over
    windows of 60/f seconds, which hold one real minute's expected arrivals (so bursts
    shorter than that window are averaged; cache gaps in the sample are 1/f times longer,
    which matters only when the full schedule's mean gap nears the TTL).
    """
    n = schedule_of.expected_requests(scenario)
    process = scenario.arrivals if scenario.arrivals is not None else scenario.sessions.arrival  # type: ignore[union-attr]
    if n <= EXACT_PLAN_MAX or process.replay:
        return _plan(scenario, scenario, 1.0)
    f = EXACT_PLAN_MAX / n
    if scenario.arrivals is not None:
        thin = dataclasses.replace(scenario, arrivals=scenario.arrivals.thinned(f))
    else:
        assert scenario.sessions is not None
        thin = dataclasses.replace(scenario, sessions=dataclasses.replace(
            scenario.sessions, arrival=scenario.sessions.arrival.thinned(f)))
    return _plan(scenario, thin, f)


def _plan(scenario: Scenario, drawn: Scenario, f: float) -> Plan:
    """The plan of `scenario` from the schedule of `drawn` (itself, or a thinned copy holding
    a share `f` of its arrivals)."""
    sc = drawn
    reqs, sessions = schedule(sc)
    window = WINDOW_S / f
    if f < 1:
        full = (schedule_of.expected_requests(scenario) if scenario.arrivals is not None
                else len(reqs) / f)
        scale = full / len(reqs) if reqs else 0.0
        sessions = round(sessions / f) if sessions is not None else None
    else:
        full, scale = float(len(reqs)), 1.0

    def _peak(events: list[tuple[float, float]]) -> float:
        """Largest sum of weights over any window [t, t + window)."""
        return rolling_peak(events, window)

    table = pricing.table_for(sc.pricing)
    peak_rpm = int(_peak([(r.t, 1.0) for r in reqs]))   # the same schedule for every arm
    arms = []
    for arm in sc.arms:
        info = lookup(arm.model_id)
        expected_reads = _expected_reads(sc, arm, reqs, info.cache_min_tokens)
        cases = ("cold", "warm", "expected")
        charged: dict[str, list[tuple[float, float]]] = {"cold": [], "warm": []}
        reserved = []
        n_in = n_out = warm_n = uncached = 0
        cached_sum = read_warm = read_expected = 0
        burndown = info.output_burndown
        for r, (exp_read, exp_warm) in zip(reqs, expected_reads):
            total, cached, readable = _cacheable(sc, arm, r, info.cache_min_tokens)
            warm_n += exp_warm
            output = min(r.output_tokens, arm.max_tokens)  # the model stops at maxTokens
            uncached += total - cached
            cached_sum += cached
            read_warm += readable
            read_expected += exp_read
            # Bedrock's quota charge: input + cache writes + output x burndown; reads are free
            # (all cold: every cached token written; all warm: `readable` of them read)
            charged["cold"].append((r.t, total + output * burndown))
            charged["warm"].append((r.t, total - readable + output * burndown))
            n_in += total
            n_out += output
            reserved.append((r.t, total + arm.max_tokens))  # reserved at start: input + maxTokens
        # usage summed per case: a request reading `read` tokens writes the rest up to `cached`
        tot: dict[str, dict[str, int]] = {c: {} for c in cases}
        if reqs:
            for case, read in (("cold", 0), ("warm", read_warm), ("expected", read_expected)):
                tot[case] = {"inputTokens": uncached, "outputTokens": n_out,
                             "cacheReadInputTokens": read, "cacheWriteInputTokens": cached_sum - read}
        batch = arm.mode == "batch"  # priced at the batch price, cache stacked (docs/pricing.md)
        cost = {c: pricing.cost(arm.model_id, tot[c], cache_ttl=arm.cache_ttl, prices=table,
                             tier=arm.service_tier, batch=batch) * scale
                for c in cases}
        arms.append(ArmPlan(
            arm=arm, requests=round(full), input_tokens=round(n_in * scale), output_tokens=round(n_out * scale),
            cache_effective=arm.cache and sc.workload.prefix_tokens >= info.cache_min_tokens,
            peak_rpm=peak_rpm,
            peak_tpm_reserved=round(_peak(reserved)),
            peak_tpm_charged_cold=round(_peak(charged["cold"])),
            peak_tpm_charged_warm=round(_peak(charged["warm"])),
            cost_cold_usd=cost["cold"], cost_warm_usd=cost["warm"],
            cost_expected_usd=cost["expected"],
            expected_warm_ratio=warm_n / len(reqs) if reqs else 0.0,
            expected_read_share=_share(tot["expected"]),
            reserve_mean=sum(v for _, v in reserved) / len(reserved) if reserved else 0.0,
            reserve_max=max((v for _, v in reserved), default=0),
            quota_tpm=_quota_tpm(sc, arm),
        ))
    traffic = (scenario.arrivals if scenario.arrivals is not None
               else scenario.sessions.arrival).describe()  # type: ignore[union-attr]
    n_over = len(sc.pricing)
    note = f"prices: catalog as of {table.as_of}" + (
        f", {n_over} override{'s' if n_over != 1 else ''} from the scenario" if n_over else "")
    return Plan(scenario=scenario, traffic=traffic, sessions=sessions, requests=round(full),
                peak_rpm=peak_rpm, arms=tuple(arms), prices_note=note,
                sample=f)


def _quota_tpm(sc: Scenario, arm: Arm) -> int:
    """The emulator's TPM quota for the arm's model id as called (0: not the emulator, or none)."""
    if sc.target.kind != "emulator":
        return 0
    try:  # the emulator's own reading of [emulator]
        cfg = EmulatorConfig.from_mapping(sc.emulator, source=sc.path)
    except ValueError:
        return 0
    return cfg.limit_for(arm.model_id, arm.profile).tpm
