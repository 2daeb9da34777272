"""The emulator's latency model fitted to a run's attempts (`loadgen calibrate`): pure, no I/O.

The emulator's model (docs/emulator.md, "Latency"), per request, scenario seconds:

    ttft = B + prefill_s_per_1k * U / 1000 + cache_read_s_per_1k * R / 1000 + cross_region_s * X
    end  = ttft + (output_tokens - 1) / S

B ~ lognormal(median `ttft_s`, sigma `ttft_sigma`); S ~ lognormal(median `tokens_per_s`,
sigma `tokens_per_s_sigma`); U = input_tokens + cache_write (uncached or written input),
R = cache_read, X = 1 when the request was served outside the caller's Region (or, when
the records do not say where it was served, as against AWS, when it went through a `geo`
or `global` profile). Queueing (`queue_knee`, `queue_max_s`) is not fitted: it needs a
load sweep, not one run.

The fit, on the ok, streamed attempts of one model (times from the actual send, so
schedule lag stays out):
  1. least squares of ttft on [1, U, R, X] (numpy.linalg.lstsq): the slopes, their
     standard errors, R^2; B's noise is additive and independent of the sizes, so the
     slopes are unbiased whatever its distribution;
  2. B_i = ttft_i - slopes . x_i; `ttft_s` = median(B), `ttft_sigma` = 1.4826 x MAD(log B)
     (a lognormal's median and sigma, robust to a few slow responses);
  3. attempts whose log B lies more than OUTLIER_SIGMAS robust sigmas from the median
     (slow-stream faults, a cold model) are set aside and steps 1-2 repeated until stable
     (at most three times); before that, a generous trim on the additive residual
     (ROUGH_SIGMAS) keeps a few slow responses with large prompts from tilting the slopes;
  4. speed S_i = (output_tokens - 1) / (end - first_token) on attempts with at least two
     output tokens; `tokens_per_s` = median, `tokens_per_s_sigma` = 1.4826 x MAD(log S).
A slope the data cannot identify (every attempt the same size, no cache read, no
cross-Region call, or one regressor moving in lockstep with another) keeps its default and
is listed in `Calibration.unidentified` with the reason; the caller decides to refuse.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable, Mapping

import numpy as np

from loadgen.catalog import profiles

OUTLIER_SIGMAS = 5.0      # robust sigmas of log B beyond which an attempt is an outlier
ROUGH_SIGMAS = 10.0       # the first trim, on the additive residual (skewed by the lognormal: generous)
MIN_ATTEMPTS = 10         # ok, streamed attempts of the model below which nothing is fitted
MIN_GROUP = 3             # attempts needed on each side of the cross-Region indicator
COLLINEAR = 0.01          # 1 - R^2 of a regressor on the others below this (variance inflation > 100): not separable
MAD_TO_SIGMA = 1.4826     # MAD of a normal sample x this = its sigma
NOT_FITTED = ("queue_knee", "queue_max_s")

# regressors after the intercept: (latency key, what it is, per-unit scale)
_SLOPES = (("prefill_s_per_1k", "uncached or written input tokens", 1000.0),
           ("cache_read_s_per_1k", "cache-read tokens", 1000.0),
           ("cross_region_s", "cross-Region calls", 1.0))


class CalibrationError(ValueError):
    """The records cannot be calibrated at all (no usable attempt, several models, ...)."""


@dataclass(frozen=True)
class Param:
    """One latency key: its value (fitted or the default kept) and how it was found."""

    key: str
    value: float
    default: float
    fitted: bool
    stderr: float | None = None    # standard error of a fitted slope or median, same unit
    note: str = ""                 # why it kept its default, or a clamp


@dataclass(frozen=True)
class Quality:
    """How well the fitted model reproduces one observed time: n attempts, R^2 of the
    fitted value against the observed one, median |fitted - observed| / observed."""

    n: int
    r2: float
    median_rel_err: float


@dataclass(frozen=True)
class Calibration:
    model: str                           # base model id
    caller_region: str | None
    cross_basis: str                     # "served Region" | "profile"
    params: tuple[Param, ...]            # in the order of the defaults given
    ttft: Quality
    e2e: Quality
    speed_n: int
    used: int                            # attempts in the TTFT fit
    excluded: tuple[tuple[str, int], ...]   # (reason, count)
    unidentified: tuple[tuple[str, str], ...]  # (key, why)
    other_models: tuple[tuple[str, int], ...] = ()  # (base id, usable attempts) left out
    # the fitted base (ttft minus the fitted input terms) by served Region and by profile kind:
    # (group, attempts, median s). The emulator has one latency model for every Region; these
    # show how far apart they were.
    base_by_region: tuple[tuple[str, int, float], ...] = ()
    base_by_profile: tuple[tuple[str, int, float], ...] = ()
    # for the plot: (observed ttft, fitted ttft, observed e2e, fitted e2e) per used attempt, s
    points: tuple[tuple[float, float, float, float], ...] = field(default=(), repr=False)

    def value(self, key: str) -> float:
        return next(p.value for p in self.params if p.key == key)

    def latency(self) -> dict[str, float]:
        """{latency key: value} for every key (an `[emulator.latency]` table's values)."""
        return {p.key: p.value for p in self.params}


@dataclass(frozen=True)
class _Obs:
    ttft: float        # s from the actual send
    e2e: float         # s from the actual send
    stream_s: float    # end - first token
    u: float           # uncached or written input tokens
    r: float           # cache-read tokens
    x: float           # 1.0: a cross-Region call
    out: int           # output tokens
    served: str        # Region that served it ("unknown" when the record does not say)
    profile: str       # region | geo | global


def calibrate(records: Iterable[Mapping], *, defaults: Mapping[str, float], caller_region: str | None,
              model: str | None = None) -> Calibration:
    """Fit the latency model of one model (base id or any id form; None: the run's only
    model) from requests.jsonl records (dicts). `defaults`: every `[emulator.latency]` key
    and its value, in the table's order (the caller takes them from the emulator's preset, so
    this package needs no emulator import). Raises CalibrationError when nothing can be
    fitted; parameters the data cannot identify keep their `defaults` value and are listed
    in `.unidentified`."""
    want = profiles.base_id(model) if model else None
    excluded: dict[str, int] = {}
    by_model: dict[str, list[tuple[Mapping, str]]] = {}
    ids: dict[str, tuple] = {}
    for rec in records:
        why = _exclusion(rec)
        if why:
            excluded[why] = excluded.get(why, 0) + 1
            continue
        mid = str(rec.get("model_id") or "")
        if mid not in ids:   # a run calls a few ids many times
            ids[mid] = profiles.split(mid)
        kind, _, base = ids[mid]
        by_model.setdefault(base, []).append((rec, kind))
    if not by_model:
        raise CalibrationError("no ok, streamed attempt to fit (" + _reasons(excluded) + "); calibrate needs "
                               "successful streamed responses ([model] stream = true)")
    if want is None:
        if len(by_model) > 1:
            raise CalibrationError("the run called several models (" + ", ".join(sorted(by_model)) + "); the "
                                   "emulator has one latency model: choose one with --model")
        want = next(iter(by_model))
    if want not in by_model:
        raise CalibrationError(f"no ok, streamed attempt of {want} (the run has: {', '.join(sorted(by_model))})")
    others = tuple(sorted((m, len(v)) for m, v in by_model.items() if m != want))
    for m, n in others:
        excluded[f"another model ({m})"] = n

    rows = by_model[want]
    if len(rows) < MIN_ATTEMPTS:
        raise CalibrationError(f"only {len(rows)} ok, streamed attempt(s) of {want}; calibrate needs at least "
                               f"{MIN_ATTEMPTS}")
    served_known = caller_region is not None and all(rec.get("region") for rec, _ in rows)
    basis = "served Region" if served_known else "profile"
    obs = [_observation(rec, kind, caller_region if served_known else None) for rec, kind in rows]
    return _fit(obs, defaults, want, caller_region, basis, excluded, others)


def _exclusion(rec: Mapping) -> str:
    """Why a record stays out of the fit ("" when it is used)."""
    status = rec.get("status")
    if status != "ok":
        return f"{status}"
    if rec.get("first_token") is None:
        return "no first token (batch)"
    if rec.get("first_token") >= rec.get("end") and int(rec.get("output_tokens") or 0) > 1:
        return "not streamed (first token = end)"
    return ""


def _reasons(excluded: Mapping[str, int]) -> str:
    return ", ".join(f"{n} {why}" for why, n in excluded.items()) or "requests.jsonl is empty"


def _observation(rec: Mapping, kind: str, caller_region: str | None) -> _Obs:
    start, first, end = float(rec["start"]), float(rec["first_token"]), float(rec["end"])
    if caller_region is not None:
        cross = rec.get("region") != caller_region
    else:
        cross = kind != "region"
    return _Obs(ttft=first - start, e2e=end - start, stream_s=end - first,
                u=float(rec.get("input_tokens") or 0) + float(rec.get("cache_write") or 0),
                r=float(rec.get("cache_read") or 0), x=1.0 if cross else 0.0,
                out=int(rec.get("output_tokens") or 0), served=str(rec.get("region") or "unknown"),
                profile=kind)


def _unidentified(cols: np.ndarray, raw: np.ndarray) -> dict[str, str]:
    """{key: why} for the slope columns (scaled `cols`, unscaled `raw`) the data cannot
    separate: a constant column, a thin indicator, or columns in lockstep (all of them named)."""
    out: dict[str, str] = {}
    for j, (key, what, _) in enumerate(_SLOPES):
        distinct = np.unique(raw[:, j])
        if len(distinct) < 2:
            v = float(distinct[0]) if len(distinct) else 0.0
            out[key] = ("every attempt was " + ("a cross-Region call" if v else "served in the caller's Region")
                        if key == "cross_region_s" else f"every attempt had the same {what} ({v:g})")
        elif key == "cross_region_s":
            ones = int(raw[:, j].sum())
            if min(ones, len(raw) - ones) < MIN_GROUP:
                out[key] = (f"only {min(ones, len(raw) - ones)} attempt(s) on one side of cross-Region vs "
                            f"in-Region (at least {MIN_GROUP} each are needed)")
    varying = [j for j, (k, _, _) in enumerate(_SLOPES) if k not in out]
    lockstep: dict[str, str] = {}
    for j in varying:
        others = [k for k in varying if k != j]
        if not others:
            continue
        design = np.column_stack([np.ones(len(cols))] + [cols[:, k] for k in others])
        col = cols[:, j]
        coef, *_ = np.linalg.lstsq(design, col, rcond=None)
        total = float(((col - col.mean()) ** 2).sum())
        if float(((col - design @ coef) ** 2).sum()) / total < COLLINEAR:
            partner = " and ".join(_SLOPES[k][1] for k in others)
            lockstep[_SLOPES[j][0]] = (f"{_SLOPES[j][1]} moved (nearly) in lockstep with {partner}: "
                                       "their effects cannot be told apart")
    out.update(lockstep)
    return out


def _robust_lognormal(values: np.ndarray) -> tuple[float, float, float]:
    """(median, sigma of the log, standard error of the median) of positive values."""
    pos = values[values > 0]
    med = float(np.median(pos))
    logs = np.log(pos)
    sigma = MAD_TO_SIGMA * float(np.median(np.abs(logs - np.median(logs))))
    # the median of a lognormal sample: se(log median) ~ 1.2533 sigma / sqrt(n)
    return med, sigma, med * 1.2533 * sigma / math.sqrt(len(pos))


def _quality(observed: np.ndarray, fitted: np.ndarray) -> Quality:
    total = float(((observed - observed.mean()) ** 2).sum())
    r2 = 1.0 - float(((observed - fitted) ** 2).sum()) / total if total > 0 else float("nan")
    rel = np.abs(fitted - observed) / np.where(observed > 0, observed, np.nan)
    return Quality(n=len(observed), r2=r2, median_rel_err=float(np.nanmedian(rel)) if len(rel) else float("nan"))


def _by(used: list[_Obs], base: np.ndarray, key) -> tuple[tuple[str, int, float], ...]:
    """(group, attempts, median base s) per group of the `used` attempts."""
    groups: dict[str, list[float]] = {}
    for o, b in zip(used, base):
        groups.setdefault(key(o), []).append(float(b))
    return tuple((g, len(v), float(np.median(v))) for g, v in sorted(groups.items()))


def _fit(obs: list[_Obs], defaults: Mapping[str, float], model: str, caller_region: str | None, basis: str,
         excluded: dict[str, int], others: tuple) -> Calibration:
    ttft = np.array([o.ttft for o in obs])
    raw = np.array([[o.u, o.r, o.x] for o in obs])
    cols = raw / np.array([s for _, _, s in _SLOPES])
    keys = [k for k, _, _ in _SLOPES]
    missing = _unidentified(cols, raw)
    free = [j for j, k in enumerate(keys) if k not in missing]
    fixed = np.array([defaults[k] if k in missing else 0.0 for k in keys])

    def ols(keep: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(y, design, coefficients, all slopes) of least squares on the kept attempts."""
        y = ttft[keep] - cols[keep] @ fixed
        design = np.column_stack([np.ones(int(keep.sum()))] + [cols[keep][:, j] for j in free])
        coef, *_ = np.linalg.lstsq(design, y, rcond=None)
        slopes = fixed.copy()
        for i, j in enumerate(free):
            slopes[j] = coef[1 + i]
        return y, design, coef, slopes

    def enough(keep: np.ndarray) -> np.ndarray:
        if int(keep.sum()) < MIN_ATTEMPTS:
            raise CalibrationError(f"the fitted input terms leave a positive base time to first token for only "
                                   f"{int(keep.sum())} of {len(obs)} attempts of {model}: the latency model "
                                   "does not describe these times")
        return keep

    # A first, generous trim on the additive residual (ROUGH_SIGMAS robust sigmas) so that a
    # few 10x responses with large prompts cannot tilt the slopes; then the lognormal rule.
    keep = np.ones(len(obs), dtype=bool)
    for _ in range(3):
        y, design, coef, slopes = ols(keep)
        resid = ttft - cols @ slopes - coef[0]
        centre = float(np.median(resid[keep]))
        scale = MAD_TO_SIGMA * float(np.median(np.abs(resid[keep] - centre)))
        new_keep = enough(np.abs(resid - centre) <= ROUGH_SIGMAS * max(scale, 1e-9))
        if np.array_equal(new_keep, keep):
            break
        keep = new_keep
    for _ in range(3):   # the base's log within OUTLIER_SIGMAS of its median, refit, until stable
        y, design, coef, slopes = ols(keep)
        base = ttft - cols @ slopes
        logs = np.log(np.where(base > 0, base, np.nan))
        med_log = float(np.nanmedian(logs[keep]))
        sig = MAD_TO_SIGMA * float(np.nanmedian(np.abs(logs[keep] - med_log)))
        new_keep = enough((base > 0) & (np.abs(logs - med_log) <= OUTLIER_SIGMAS * max(sig, 1e-9)))
        if np.array_equal(new_keep, keep):
            break
        keep = new_keep
    y, design, coef, slopes = ols(keep)
    base = ttft - cols @ slopes
    n_out = len(obs) - int(keep.sum())
    if n_out:
        excluded[f"outliers (time to first token more than {OUTLIER_SIGMAS:g} sigma from the fit)"] = n_out

    # standard errors of the free slopes (ordinary least squares)
    resid = y - design @ coef
    dof = max(1, len(y) - design.shape[1])
    try:
        cov = np.linalg.inv(design.T @ design) * float((resid ** 2).sum()) / dof
        se = np.sqrt(np.abs(np.diag(cov)))
    except np.linalg.LinAlgError:
        se = np.full(design.shape[1], np.nan)
    b_med, b_sigma, b_se = _robust_lognormal(base[keep])

    params: dict[str, Param] = {}
    params["ttft_s"] = Param("ttft_s", b_med, defaults["ttft_s"], True, b_se)
    params["ttft_sigma"] = Param("ttft_sigma", b_sigma, defaults["ttft_sigma"], True)
    for j, k in enumerate(keys):
        d = defaults[k]
        if k in missing:
            params[k] = Param(k, d, d, False, note=missing[k])
            continue
        v, s = float(slopes[j]), float(se[1 + free.index(j)])
        if v < 0:
            params[k] = Param(k, 0.0, d, True, s, note=f"fitted {v:.4g}, clamped to 0 (the emulator takes no "
                                                       "negative slope)")
        else:
            params[k] = Param(k, v, d, True, s)

    fast = [o for o, k in zip(obs, keep) if k and o.out >= 2 and o.stream_s > 0]
    if fast:
        speeds = np.array([(o.out - 1) / o.stream_s for o in fast])
        s_med, s_sigma, s_se = _robust_lognormal(speeds)
        params["tokens_per_s"] = Param("tokens_per_s", s_med, defaults["tokens_per_s"], True, s_se)
        params["tokens_per_s_sigma"] = Param("tokens_per_s_sigma", s_sigma, defaults["tokens_per_s_sigma"], True)
    else:
        why = "no attempt streamed two or more output tokens over a measurable time"
        missing["tokens_per_s"] = why
        missing["tokens_per_s_sigma"] = why
        for k in ("tokens_per_s", "tokens_per_s_sigma"):
            params[k] = Param(k, defaults[k], defaults[k], False, note=why)
    for k in NOT_FITTED:
        d = defaults[k]
        params[k] = Param(k, d, d, False, note="calibrate does not fit queueing (it needs a load sweep, not one run)")

    used = [o for o, k in zip(obs, keep) if k]
    final = np.array([params[k].value for k in keys])
    fit_ttft = params["ttft_s"].value + cols[keep] @ final
    tps = params["tokens_per_s"].value
    fit_e2e = fit_ttft + np.array([(o.out - 1) / tps if tps > 0 and o.out > 1 else 0.0 for o in used])
    obs_ttft = np.array([o.ttft for o in used])
    obs_e2e = np.array([o.e2e for o in used])
    return Calibration(
        model=model, caller_region=caller_region, cross_basis=basis,
        params=tuple(params[k] for k in defaults),
        ttft=_quality(obs_ttft, fit_ttft), e2e=_quality(obs_e2e, fit_e2e), speed_n=len(fast),
        used=len(used), excluded=tuple(excluded.items()),
        unidentified=tuple((k, missing[k]) for k in defaults if k in missing),
        other_models=others,
        base_by_region=_by(used, obs_ttft - fit_ttft + params["ttft_s"].value, lambda o: o.served),
        base_by_profile=_by(used, obs_ttft - fit_ttft + params["ttft_s"].value, lambda o: o.profile),
        points=tuple(zip(obs_ttft.tolist(), fit_ttft.tolist(), obs_e2e.tolist(), fit_e2e.tolist())))
