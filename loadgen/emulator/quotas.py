"""The caller's quotas: requests per minute, tokens per minute and tokens per day of each
(model id as called, caller Region), as Bedrock counts them.

A request is checked and charged at its start for its reservation (all input tokens +
maxTokens); the model corrects the token charges when it ends (EmulatorModel.finish).
A refusal is a ThrottlingException naming its limit (errors.quota_value), so clients read
which limit bound without parsing the message.
"""

from __future__ import annotations

from loadgen.emulator.config import EmulatorConfig, Limit
from loadgen.emulator.errors import BedrockError, error, quota_value
from loadgen.emulator.tiers import FLEX_QUOTA_SHARE
from loadgen.emulator.window import Charge, Window, Windows

DAY_S = 86_400.0  # the tokens-per-day window, scenario s

QuotaKey = tuple  # (model id as called, caller Region)


class Quotas:
    def __init__(self, config: EmulatorConfig) -> None:
        self.rpm = Windows(config.window_s, config.window)
        self.tpm = Windows(config.window_s, config.window)
        self.tpd = Windows(DAY_S, config.window)

    def check(self, limit: Limit, key: QuotaKey, reserve: int, tier: str, now: float) -> BedrockError | None:
        """The throttle refusing a request that reserves `reserve` tokens at scenario time
        `now` under `limit`, or None. RPM first, then TPD, then TPM (flex may fill only
        FLEX_QUOTA_SHARE of it, see tiers.py)."""
        src = key[1]
        if limit.rpm and self.rpm[key].total(now) + 1 > limit.rpm:
            return error("ThrottlingException", "Too many requests, please wait before trying again.",
                         served_region=src, quota=quota_value("rpm", (src,)))
        if limit.tpd and self.tpd[key].total(now) + reserve > limit.tpd:
            # Bedrock's text: minorun365/agent-book#29 (emulator.toml, quotas.tpd)
            return error("ThrottlingException", "Too many tokens per day, please wait before trying again.",
                         served_region=src, quota=quota_value("tpd", (src,)))
        share = FLEX_QUOTA_SHARE if tier == "flex" else 1.0
        if limit.tpm and self.tpm[key].total(now) + reserve > limit.tpm * share:
            return error("ThrottlingException", "Too many tokens, please wait before trying again.",
                         served_region=src, quota=quota_value("tpm", (src,)))
        return None

    def charge(self, limit: Limit, key: QuotaKey, reserve: int, now: float) -> list[tuple[Window, Charge]]:
        """Charge an admitted request: one request, and `reserve` tokens to the TPM and TPD
        windows. Returns the token charges, which the end of the request corrects."""
        if limit.rpm:
            self.rpm[key].add(now, 1)
        charges = []
        if limit.tpm:
            w = self.tpm[key]
            charges.append((w, w.add(now, reserve)))
        if limit.tpd:
            w = self.tpd[key]
            charges.append((w, w.add(now, reserve)))
        return charges

    def tpm_used(self, key: QuotaKey, now: float) -> float:
        """Tokens charged at `now` in the TPM window of `key`."""
        w = self.tpm.get(key)
        return w.total(now) if w else 0.0
