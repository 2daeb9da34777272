"""Data files shipped with loadgen (catalogs with their sources)."""

from __future__ import annotations

from importlib import resources
from typing import Any

from loadgen._toml import toml


def path(name: str) -> str:
    """Filesystem path of a data file, for error messages."""
    return str(resources.files(__name__).joinpath(name))


def load(name: str) -> dict[str, Any]:
    with resources.files(__name__).joinpath(name).open("rb") as f:
        return toml.load(f)
