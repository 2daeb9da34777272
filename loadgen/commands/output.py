"""Printing a command's result to stdout."""

from __future__ import annotations

import os
import sys


def write_stdout(text: str) -> None:
    """Print `text` (plus a newline); if the reader has gone (`loadgen report DIR | head`),
    stop quietly: the rest of the output has nowhere to go."""
    try:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
    except BrokenPipeError:
        # Point stdout at /dev/null so the interpreter's flush at exit does not raise again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
