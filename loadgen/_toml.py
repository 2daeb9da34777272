"""tomllib on Python 3.11+, tomli before (same API)."""

import sys

if sys.version_info >= (3, 11):
    import tomllib as toml
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as toml

__all__ = ["toml"]
