"""Size each arm's synthetic prefix with the target's own token count (Bedrock CountTokens).

loadgen builds prefixes by its chars/4 rule (loadgen.catalog.tokens), which a real tokenizer does not
follow. Against AWS (`run --target aws`, `validate --target aws`) each arm's prefix is
measured with CountTokens (`POST /model/{modelId}/count-tokens`, free: "Using the CountTokens
API doesn't incur charges", count-tokens.html) and the filler resized until the target
counts exactly `prefix_tokens`:

  1. once per model: the count of a one-message request without a system prompt (the
     overhead the target adds around a prompt);
  2. per arm: count system prompt = prefix + that message; the prefix is the difference;
     resize the filler by the measured density and count again, at most MAX_CALLS times,
     keeping the closest size.

A model CountTokens does not serve (an error answer) keeps loadgen's own sizing, with a note.
The model is named by its base id: CountTokens takes a foundation-model id
(FoundationModelVersionIdentifier in botocore); whether it takes profile ids is UNSOURCED.
"""

from __future__ import annotations

from typing import Any

from loadgen.catalog.profiles import base_id
from loadgen.scenario import Scenario
from loadgen.catalog.tokens import count_tokens
from loadgen.engine.workload import PrefixSize, arm_prefix

MAX_CALLS = 4   # CountTokens calls per arm (the first plus up to three resizes)
_PROBE = [{"role": "user", "content": [{"text": "Hello."}]}]


class CountError(Exception):
    """CountTokens answered with an error (code: message)."""


async def _count(client: Any, model_id: str, system: str | None) -> int:
    conv: dict[str, Any] = {"messages": _PROBE}
    if system is not None:
        conv["system"] = [{"text": system}]
    try:
        r = await client.count_tokens(modelId=model_id, input={"converse": conv})
    except Exception as e:  # botocore ClientError and transport failures alike: noted, not fatal
        err = getattr(e, "response", {}).get("Error", {}) if hasattr(e, "response") else {}
        raise CountError(f"{err.get('Code') or type(e).__name__}: {err.get('Message') or e}") from None
    return int(r["inputTokens"])


async def measure(client: Any, sc: Scenario, salt: str = "") -> dict[str, PrefixSize]:
    """PrefixSize per arm name, measured with `client` (an aiobotocore bedrock-runtime client)."""
    target = sc.workload.prefix_tokens
    overhead: dict[str, int | str] = {}
    out: dict[str, PrefixSize] = {}
    for arm in sc.arms:
        mid = base_id(arm.model_id)
        default = arm_prefix(sc, arm, salt)
        local = count_tokens(default)
        head_local = count_tokens(arm_prefix(sc, arm, salt, 0))
        body = local - head_local
        if target <= 0:
            out[arm.name] = PrefixSize(arm.name, mid, target, body, None, local, 0, "no prefix")
            continue
        calls = 0
        try:
            if mid not in overhead:
                calls += 1
                overhead[mid] = await _count(client, mid, None)
        except CountError as e:
            overhead[mid] = str(e)
        if isinstance(overhead[mid], str):
            out[arm.name] = PrefixSize(arm.name, mid, target, body, None, local, calls,
                                       f"CountTokens refused ({overhead[mid]}); sized by loadgen's chars/4 rule")
            continue
        best: tuple[int, int, int] | None = None   # (|miss|, body, measured)
        note = ""
        tries = 0
        try:
            while tries < MAX_CALLS:
                text = arm_prefix(sc, arm, salt, body)
                tries += 1
                calls += 1
                m = await _count(client, mid, text) - int(overhead[mid])
                if best is None or abs(m - target) < best[0]:
                    best = (abs(m - target), body, m)
                if m == target or m <= 0:
                    break
                # loadgen tokens per target token, measured on this prefix
                new = body + round((target - m) * count_tokens(text) / m)
                if new == body:
                    new = body + (1 if target > m else -1)
                body = max(0, new)
        except CountError as e:
            note = f"CountTokens failed while resizing ({e})"
        if best is None:
            out[arm.name] = PrefixSize(arm.name, mid, target, local - head_local, None, local, calls,
                                       note + "; sized by loadgen's chars/4 rule")
            continue
        miss, body, m = best
        if miss and not note:
            note = f"closest of {tries} sizes tried: {m - target:+d} tokens from the target"
        out[arm.name] = PrefixSize(arm.name, mid, target, body, m,
                                   count_tokens(arm_prefix(sc, arm, salt, body)), calls, note)
    return out


def describe(sizes: dict[str, PrefixSize]) -> list[str]:
    """One line per arm for `run` and `validate`."""
    lines = []
    for s in sizes.values():
        if s.measured is None:
            lines.append(f"  {s.arm}: prefix {s.local} tokens by loadgen's rule (target {s.target}); {s.note}")
        else:
            lines.append(f"  {s.arm}: prefix {s.measured} tokens by {s.model_id}'s CountTokens (target {s.target}; "
                         f"{s.local} by loadgen's chars/4 rule; {s.calls} CountTokens calls)"
                         + (f"; {s.note}" if s.note else ""))
    return lines
