"""What `--format json`, `--junit`, `--results-dir` and `NO_COLOR` mean in every command
that has them: one JSON document on stdout, a JUnit file, an exact results directory
checked before anything is sent, and a status line without ANSI codes when asked."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence, TextIO

from loadgen.commands.output import write_stdout
from loadgen.report.junit import write_junit
from loadgen.results.folder_probe import cannot_create_in


def emit_json(doc: Mapping[str, Any]) -> None:
    """The one JSON document of a `--format json` command (NaN/inf as null, as in summary.json)."""
    write_stdout(json.dumps(_finite(doc), indent=2, ensure_ascii=False, allow_nan=False, default=str))


def _finite(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if obj == obj and obj not in (float("inf"), float("-inf")) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def printer(json_mode: bool) -> Callable[[str], None]:
    """Where a command's human lines go: stdout, or stderr when stdout is the JSON document."""
    out = sys.stderr if json_mode else sys.stdout

    def say(line: str) -> None:
        print(line, file=out, flush=True)

    return say


def results_dir_problem(path: str | None) -> str | None:
    """Why `--results-dir PATH` cannot be used (None if it can): checked before anything
    is sent; the directory is claimed exclusively when the run starts."""
    if path is None:
        return None
    p = Path(path)
    if p.exists() and not p.is_dir():
        return f"--results-dir: {p} exists and is not a directory"
    if p.is_dir() and any(p.iterdir()):
        return (f"--results-dir: {p} exists and is not empty: loadgen never overwrites results "
                "(name a new directory or remove this one)")
    return None


def junit_problem(path: str | None) -> str | None:
    """Why `--junit FILE` could not be written (None if it can), before the run starts."""
    if path is None:
        return None
    p = Path(path)
    if p.is_dir():
        return f"--junit: {p} is a directory; expected a file name such as junit.xml"
    parent = next((a for a in p.absolute().parents if a.exists()), None)
    if parent is None:
        return None
    if not parent.is_dir():
        return f"--junit: {parent} is not a directory"
    # the folder (or the nearest one that exists: write_junit makes the rest) must take a
    # new file: the report is written through a temporary file beside it
    why = cannot_create_in(parent)
    return f"--junit: cannot create a file in {parent}: {why}" if why is not None else None


def write_junit_or_say(path: str | None, suites: Sequence[tuple[str, Sequence[Any], float]],
                       err: Callable[[str], None]) -> bool:
    """Write the JUnit file if asked; False (after saying why) if it could not be written."""
    if path is None:
        return True
    try:
        write_junit(path, suites)
    except OSError as e:
        err(f"--junit {path}: not written: {e.strerror or e}")
        return False
    return True


_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class PlainTerminal:
    """A terminal stream that drops ANSI escape codes (NO_COLOR, https://no-color.org/).

    The live status line redraws itself with "\\r" + erase-line; without the erase code
    a shorter line would leave the tail of the longer one, so each redrawn line is
    padded to the previous one's length instead.
    """

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._last = 0

    def write(self, text: str) -> int:
        plain = _ANSI.sub("", text)
        if plain.startswith("\r"):
            body = plain[1:]
            plain = "\r" + body.ljust(self._last)
            self._last = len(body)
        elif plain.endswith("\n"):
            self._last = 0
        return self._stream.write(plain)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def status_stream(stream: TextIO, env: Mapping[str, str]) -> TextIO:
    """`stream` for the live status line: as it is, or without ANSI codes when NO_COLOR is
    set to anything non-empty (no-color.org). Off a terminal the status line writes plain
    lines anyway (api/progress.py)."""
    if env.get("NO_COLOR"):
        return PlainTerminal(stream)  # type: ignore[return-value]
    return stream
