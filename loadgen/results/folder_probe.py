"""Whether a file can be created in a folder, asked before a run so that an output it
could not write (`--junit`, `--output jsonl=PATH`) is refused before anything is sent
or written, not found after the whole run."""

from __future__ import annotations

import tempfile
from pathlib import Path


def cannot_create_in(folder: Path) -> str | None:
    """Why no file can be created in `folder` (None if one can). Tried for real, a
    temporary file made and removed there: a folder can exist yet refuse files (/proc, a
    read-only mount, permissions), which looking at it does not tell."""
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".loadgen-probe-"):
            pass
    except OSError as e:
        return e.strerror or str(e)
    return None
