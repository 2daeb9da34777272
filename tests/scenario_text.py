"""Shared by the end-to-end tests: the text of a small scenario on Claude Haiku 4.5 (`us.`
profile) against the built-in emulator on "fast" latency, one short question on a
5,024-token prefix (above the model's cache minimum, so cache arms can hit). Each test
says only what differs: its arms and any extra tables. Tests edit the text with
str.replace on the lines below (`rate = "1/s"`, `duration = "20s"`, ...), so keep them
one key per line."""

from __future__ import annotations

HAIKU = "anthropic.claude-haiku-4-5-20251001-v1:0"


def haiku_scenario(*, name: str, seed: int, duration: str, time_scale: float, rate: str, arms: str,
                   stream: bool | None = None, tables: str = "", after: str = "") -> str:
    """The scenario's TOML: `tables` go after [emulator] (e.g. [emulator.quotas],
    [outputs]), `arms` after those, `after` last (e.g. [thresholds])."""
    stream_line = "" if stream is None else f"stream = {'true' if stream else 'false'}\n"
    return (f'name = "{name}"\nseed = {seed}\nduration = "{duration}"\n\n'
            f"[target]\ntime_scale = {time_scale:g}\n\n"
            f'[model]\nid = "us.{HAIKU}"\nmax_tokens = 64\n{stream_line}\n'
            '[workload]\nkind = "single"\nprefix_tokens = 5024\nquestion_tokens = 12\noutput_tokens = 20\n\n'
            f'[arrivals]\nkind = "constant"\nrate = "{rate}"\n\n'
            '[emulator]\nlatency = "fast"\n'
            + (f"\n{tables.strip()}\n" if tables.strip() else "")
            + f"\n{arms.strip()}\n"
            + (f"\n{after.strip()}\n" if after.strip() else ""))
