"""The output length a request asks for in plain words ("Reply with about N tokens.", which
loadgen's workload puts in every user message): the emulator honours it (emulator/model.py)."""

from __future__ import annotations

import re

REPLY_HINT = re.compile(r"reply with about (\d+) tokens", re.IGNORECASE)


def reply_hint(text: str) -> "re.Match[str] | None":
    """`REPLY_HINT.search(text)`, faster: a case-insensitive search tries every position,
    so the candidates are found in the lower-cased text first ("reply" has no case variants
    outside ASCII, so every match starts at one) and the pattern is tried only there.
    Lower-casing that changes the length (a few letters expand) falls back to search."""
    low = text.lower()
    if len(low) != len(text):
        return REPLY_HINT.search(text)
    i = low.find("reply")
    while i >= 0:
        m = REPLY_HINT.match(text, i)
        if m is not None:
            return m
        i = low.find("reply", i + 1)
    return None
