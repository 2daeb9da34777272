"""The event loop every real-clock process of loadgen runs on: uvloop where it is installed.

`loadgen run` (in-process and each `--workers` segment), the emulator's own process of a
split run and `loadgen emulator` spend most of their CPU in the event loop and the HTTP
stack around it. uvloop (libuv under asyncio's API; anyio and aiohttp support it) does
that work in C: on the 2-core machine it cut the `loadgen run` path's CPU per request
and its schedule lag (docs/performance.md, sections 1 and 2).

`LOADGEN_EVENT_LOOP=asyncio` in the environment opts out (the standard library's loop);
unset or `uvloop`, uvloop is used where it can be: it is a dependency everywhere but
Windows, and a process without it falls back to asyncio's loop. The variable is read
here, where each process starts its loop (the one place below the commands that reads
the environment: it chooses the runtime, never what is sent), so worker processes
started by the run inherit the choice.

`simulate` never comes here: its virtual clock is an event loop of its own
(`clock/virtual.py`, `VirtualClock.loop_factory`).

uvloop's timers have whole-millisecond resolution and may fire up to a millisecond early;
the clocks that sleep on it loop until their time has come (`clock/real.py`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from typing import Any, Awaitable, Callable, Mapping, TypeVar

import anyio

try:  # not on Windows (no uvloop there), nor where it was not installed
    import uvloop
except ImportError:  # pragma: no cover - depends on the platform
    uvloop = None

_log = logging.getLogger(__name__)  # an unknown LOADGEN_EVENT_LOOP value, as a warning
ENV_VAR = "LOADGEN_EVENT_LOOP"
CHOICES = ("uvloop", "asyncio")

T = TypeVar("T")


def loop_name(environ: Mapping[str, str] = os.environ) -> str:
    """The loop this process runs: "uvloop", or "asyncio" when opted out or uvloop is
    not available. An unknown value of the variable is treated as unset, with a warning
    (a misspelt opt-out must not pass unnoticed)."""
    wanted = environ.get(ENV_VAR, "").strip().lower()
    if wanted and wanted not in CHOICES:
        _warn_once(f"{ENV_VAR}={environ[ENV_VAR]!r} is not one of {', '.join(CHOICES)}; using the default")
    if wanted == "asyncio" or uvloop is None or sys.platform == "win32":
        return "asyncio"
    return "uvloop"


_warned: set[str] = set()


def _warn_once(message: str) -> None:
    if message not in _warned:
        _warned.add(message)
        _log.warning(message)


def loop_factory(environ: Mapping[str, str] = os.environ) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """A new-loop function for `anyio.run`'s `loop_factory`, or None for asyncio's default."""
    return uvloop.new_event_loop if loop_name(environ) == "uvloop" else None


def backend_options(environ: Mapping[str, str] = os.environ) -> dict[str, Any]:
    """`anyio.run(..., backend_options=...)` for this process's loop."""
    factory = loop_factory(environ)
    return {"loop_factory": factory} if factory is not None else {}


def run(fn: Callable[..., Awaitable[T]], *args: Any) -> T:
    """`anyio.run(fn, *args)` on this process's loop (see the module doc)."""
    return anyio.run(fn, *args, backend_options=backend_options())
