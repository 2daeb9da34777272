"""The dry plan in words: what `loadgen validate` prints (and `loadgen run --target aws`
before it asks to send). Pure formatting of a `plan.Plan`; figures are computed in plan.py.
"""

from __future__ import annotations

from loadgen.api.batch_setup import plan_lines
from loadgen.api.plan import EXACT_PLAN_MAX, ArmPlan, Plan
from loadgen.catalog.pricing import format_usd
from loadgen.scenario.distributions import Distribution
from loadgen.scenario.units import format_duration, format_rate


def reservation_line(a: ArmPlan) -> str:
    """What Bedrock reserves against the TPM quota per request of this arm, and what that
    allows in flight (quota / mean reservation), in words."""
    arm = a.arm
    why = ("max_tokens omitted: the request carries no maxTokens, so Bedrock reserves the model's maximum output"
           if not arm.max_tokens_set else "max_tokens")
    line = (f"  reservation  input + {_n(arm.max_tokens)} ({why}) = {_n(a.reserve_mean)} tokens per request "
            f"on average, {_n(a.reserve_max)} at most")
    if a.quota_tpm and a.reserve_mean:
        line += (f"; the {_n(a.quota_tpm)} TPM quota holds about {a.quota_tpm / a.reserve_mean:,.0f} "
                 "such requests in flight")
    return line


def _dist(d: Distribution, unit: str) -> str:
    return d.describe(format_duration if unit == "s" else (lambda x: f"{x:g}"))


def _n(x: float) -> str:
    return f"{x:,.0f}"


def _usd_plan(x: float) -> str:
    """A plan's estimate in USD: cents from $1 (figures this rough need no more)."""
    return format_usd(x, cents_from=1)


def render(p: Plan) -> str:
    sc, w = p.scenario, p.scenario.workload
    lines = [f"scenario {sc.name}  ({sc.path})"]
    if sc.description:
        lines.append(f"  {sc.description}")
    clock = (f"warp clock x{sc.target.time_scale:g}" if sc.target.kind == "emulator" else "real clock")
    lines.append(f"  duration {format_duration(sc.duration)} of scenario time, seed {sc.seed}; "
                 f"target {sc.target.kind} in {sc.target.region}, {clock}, "
                 f"up to {sc.target.max_in_flight} in flight per arm")
    if sc.sessions is not None:
        lines.append(f"  sessions: {p.traffic.replace('arrivals', 'session starts')}; "
                     f"{_turns(w.turns_min, w.turns_max)}; think time {_dist(sc.sessions.think_time, 's')}")
        lines.append(f"  workload: agent, prefix {w.prefix_tokens} tokens, turn "
                     f"{_dist(w.turn_tokens, 't') if w.turn_tokens else 0} tokens, output {_dist(w.output_tokens, 't')} tokens")
    else:
        lines.append(f"  arrivals: {p.traffic} (open loop)")
        q = _dist(w.question_tokens, "t") if w.question_tokens else "0"
        lines.append(f"  workload: single-turn, prefix {w.prefix_tokens} tokens, question {q} tokens, "
                     f"output {_dist(w.output_tokens, 't')} tokens")
    r = sc.retry
    if r.policy == "off":
        lines.append("  retry: off (one attempt per request)")
    else:
        lines.append(f"  retry: {r.policy}, up to {r.max_attempts} attempts (base {format_duration(r.base)}"
                     f"{', cap ' + format_duration(r.cap) if r.policy == 'exponential' else ''}"
                     f"{', full jitter' if r.jitter and r.policy == 'exponential' else ''}) on {', '.join(r.on)}")
    for t in sc.thresholds:
        lines.append(f"  threshold: {t.expr}  ({'arm ' + t.arm if t.arm else 'every arm'})")
    rate = p.requests / sc.duration if sc.duration else 0.0
    sched = f"{p.requests} requests"
    if p.sessions is not None:
        sched = f"{_plural(p.sessions, 'session')}, {sched} (turns start one think time apart; model latency not included)"
    lines.append(f"  schedule (seeded, the same for every arm): {sched}; "
                 f"mean {format_rate(rate) if rate else '0/s'}, peak {p.peak_rpm} requests/min")
    if p.sample < 1:
        lines.append(f"  estimated: above {EXACT_PLAN_MAX:,} requests the plan draws a thinned sample "
                     f"(1 request in {1 / p.sample:,.0f}, same shape in time) and scales it up; peaks are "
                     f"averaged over windows holding one minute's expected arrivals")
    lines.append("")
    for a in p.arms:
        arm = a.arm
        mt = f"max_tokens {arm.max_tokens}" if arm.max_tokens_set else f"max_tokens omitted (reserves {_n(arm.max_tokens)})"
        extras = [mt, "stream" if arm.stream else "no stream"]
        if arm.service_tier:
            extras.append(f"service tier {arm.service_tier}")
        if arm.mode == "batch":
            extras = [mt, "batch inference (priced at the batch price, cache stacked)"]
        cache = f"cache {arm.cache_ttl}" if arm.cache else "no cache"
        if arm.cache and not a.cache_effective:
            cache += " (prefix below the cache minimum: see warning)"
        lines.append(f"arm {arm.name}: {arm.model_id} ({arm.profile} profile), {cache}, {', '.join(extras)}")
        lines.append(f"  requests     {_n(a.requests)}, peak {_n(a.peak_rpm)}/min")
        lines.append(f"  tokens       input {_n(a.input_tokens)}, output {_n(a.output_tokens)}")
        if arm.mode != "batch":  # a batch job has its own quotas, not the on-demand TPM
            lines.append(reservation_line(a))
            lines.append(f"  peak TPM     reserved {_n(a.peak_tpm_reserved)} (input + max_tokens); charged "
                         + (f"{_n(a.peak_tpm_charged_warm)} all warm .. {_n(a.peak_tpm_charged_cold)} all cold"
                            if a.peak_tpm_charged_warm != a.peak_tpm_charged_cold else _n(a.peak_tpm_charged_cold))
                         + " (input + cache writes + output x burndown)")
        if a.cost_warm_usd != a.cost_cold_usd:
            lines.append(f"  cost         {_usd_plan(a.cost_warm_usd)} all warm .. {_usd_plan(a.cost_cold_usd)} all cold  "
                         f"({_usd_plan(a.per_1000_warm)} .. {_usd_plan(a.per_1000_cold)} per 1000 requests)")
            lines.append(f"  expected     {_usd_plan(a.cost_expected_usd)} ({_usd_plan(a.per_1000_expected)} per 1000), "
                         f"{a.expected_warm_ratio:.1%} of requests warm, {a.expected_read_share:.1%} of cached "
                         f"tokens read: the schedule's gaps against the {arm.cache_ttl} TTL")
        else:
            lines.append(f"  cost         {_usd_plan(a.cost_cold_usd)}  ({_usd_plan(a.per_1000_cold)} per 1000 requests)")
        if arm.mode == "batch":
            lines.extend(plan_lines(p.scenario, arm, a.requests, a.input_tokens))
        lines.append("")
    lines.append(f"{p.prices_note}; standard service tier. Nothing was sent.")
    return "\n".join(lines)


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _turns(lo: int, hi: int) -> str:
    return _plural(lo, "turn") if lo == hi else f"{lo}-{hi} turns"
