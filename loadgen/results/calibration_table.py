"""A Calibration as the TOML text `loadgen calibrate` prints or writes: an `[emulator.latency]`
table (loads in `loadgen emulator --config FILE` and pasted into a scenario), its comments
giving the data used, the fit quality and which values stayed defaults."""

from __future__ import annotations

import math

from loadgen.results.calibration import Calibration, Param

# what each key means, for the comment beside it (units as in emulator.toml)
_MEANING = {
    "ttft_s": "median time to first token at zero input, s",
    "ttft_sigma": "lognormal sigma of that time",
    "prefill_s_per_1k": "s per 1000 uncached or written input tokens",
    "cache_read_s_per_1k": "s per 1000 cache-read tokens",
    "tokens_per_s": "median output speed, tokens/s",
    "tokens_per_s_sigma": "lognormal sigma of the output speed",
    "cross_region_s": "s added when served outside the caller's Region",
    "queue_knee": "Region utilisation where queueing starts",
    "queue_max_s": "extra ttft at 100 % utilisation, s",
}


def _num(v: float) -> str:
    """A TOML float with 4 significant digits (never an integer literal: the keys are floats)."""
    if v == 0:
        return "0.0"
    text = f"{v:.4g}"
    if "e" in text:
        text = f"{v:.{max(0, 3 - int(math.floor(math.log10(abs(v)))))}f}"
    return text if "." in text else text + ".0"


def _how(p: Param) -> str:
    if not p.fitted:
        return f"DEFAULT kept: {p.note}"
    se = f" +/- {p.stderr:.2g}" if p.stderr is not None and math.isfinite(p.stderr) else ""
    loose = ("; poorly determined (the standard error exceeds the value: too little spread in this input)"
             if p.stderr is not None and p.stderr > abs(p.value) else "")
    return f"fitted{se}" + (f"; {p.note}" if p.note else "") + loose


def _pct(x: float) -> str:
    return f"{100 * x:.1f} %" if math.isfinite(x) else "n/a"


def _r2(x: float) -> str:
    return f"{x:.3f}" if math.isfinite(x) else "n/a (no spread)"


def calibration_toml(cal: Calibration, *, source: str, preset: str = "realistic") -> str:
    """The `[emulator.latency]` table of `cal`, with comments. `source`: the results
    directory it came from (named in the header); `preset`: the preset the defaults are from."""
    excluded = ", ".join(f"{n} {why}" for why, n in cal.excluded) or "none"
    cross = ("served Region vs the caller's Region "
             f"({cal.caller_region})" if cal.cross_basis == "served Region" else
             "geo/global profile vs in-Region id (the records do not say where each call was served)")
    lines = [
        f"# Fitted by `loadgen calibrate {source}`",
        f"# model: {cal.model}; caller Region: {cal.caller_region or 'unknown'}",
        f"# attempts used: {cal.used} (ok and streamed); excluded: {excluded}",
        f"# time to first token: n = {cal.ttft.n}, R^2 = {_r2(cal.ttft.r2)}, "
        f"median |fitted - observed| / observed = {_pct(cal.ttft.median_rel_err)}",
        f"# end to end: n = {cal.e2e.n}, R^2 = {_r2(cal.e2e.r2)}, "
        f"median |fitted - observed| / observed = {_pct(cal.e2e.median_rel_err)}",
        f"# output speed from {cal.speed_n} attempts with two or more output tokens",
        f"# cross-Region: {cross}",
        "# Times are from the actual send (schedule lag left out); fitted values are medians.",
    ]
    # one latency model serves every Region and profile in the emulator: how far apart they were
    for label, groups in (("served Region", cal.base_by_region), ("profile", cal.base_by_profile)):
        if len(groups) > 1:
            lines.append(f"# base time to first token by {label} (median s, attempts): "
                         + ", ".join(f"{g} {m:.3f} ({n})" for g, n, m in groups))
    kept = [p.key for p in cal.params if not p.fitted]
    if kept:
        lines.append(f'# Defaults kept (preset "{preset}"): {", ".join(kept)}')
    lines += ["", "[emulator.latency]", f'preset = "{preset}"']
    width = max(len(p.key) for p in cal.params) + 3 + 10
    for p in cal.params:
        assign = f"{p.key} = {_num(p.value)}"
        lines.append(f"{assign:<{width}} # {_MEANING[p.key]}; {_how(p)}")
    return "\n".join(lines) + "\n"
