"""The token-count approximation shared by the workload builder and the emulator.

Real tokenizers are model-specific and not public for Claude; loadgen only needs
sizes that are deterministic and the same on both sides of the wire. Rule: one
token per started group of 4 characters of text (ceil(len / 4)), counted per text
field. The workload builder sizes its synthetic prefixes with this function, and the
emulator counts with it, so a "6000-token prefix" is 6000 tokens to both.
"""

from __future__ import annotations

CHARS_PER_TOKEN = 4


def count_tokens(text: str) -> int:
    """Approximate token count of one text field (0 for the empty string)."""
    return -(-len(text) // CHARS_PER_TOKEN)
