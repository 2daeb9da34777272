"""Where `-v` / `--log-level` send loadgen's log records: stderr, through the stdlib
`logging`, with credentials masked.

Levels (README "Logging"): warning (default) shows only what loadgen logs as a
warning, so the default output is what it always was; info adds the emulator's and
moto's S3 server start (their 127.0.0.1 URLs) and why dispatch stopped; debug adds one
line per retry and per throttled or failed attempt. Only the `loadgen` loggers follow
the flag: botocore, aiobotocore and moto stay at warning (their debug output holds
signed request headers and whole prompts).
"""

from __future__ import annotations

import logging
import sys
from typing import Mapping, TextIO

# Environment variables whose values must never reach a log line.
SECRET_VARIABLES = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN",
                    "AWS_BEARER_TOKEN_BEDROCK")
_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}
_THIRD_PARTY = ("botocore", "aiobotocore", "boto3", "moto", "urllib3", "werkzeug", "aiohttp", "s3transfer")


def level_for(verbose: int, log_level: str | None) -> int:
    """--log-level by name wins; else -v is info and -vv (or more) debug; else warning."""
    if log_level:
        return _LEVELS[log_level]
    return logging.DEBUG if verbose >= 2 else logging.INFO if verbose == 1 else logging.WARNING


class _Redact(logging.Filter):
    """Replace any secret's value with *** in a formatted record (defence in depth: no
    loadgen log line carries one, and a library's message might)."""

    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self.secrets = secrets

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if any(s in text for s in self.secrets):
            for s in self.secrets:
                text = text.replace(s, "***")
            record.msg, record.args = text, None
        return True


def configure(verbose: int, log_level: str | None, env: Mapping[str, str], stream: TextIO | None = None) -> None:
    """Send the `loadgen` loggers to `stream` (stderr) at the chosen level; idempotent
    (a second call, e.g. tests calling main() twice, replaces the handler)."""
    level = level_for(verbose, log_level)
    root = logging.getLogger("loadgen")
    for h in list(root.handlers):
        if getattr(h, "_loadgen_cli", False):
            root.removeHandler(h)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler._loadgen_cli = True  # type: ignore[attr-defined]
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    secrets = [env[k] for k in SECRET_VARIABLES if len(env.get(k, "")) >= 4]
    if secrets:
        handler.addFilter(_Redact(secrets))
    root.addHandler(handler)
    root.setLevel(level)  # records still propagate: the root logger has no handler in the CLI
    for name in _THIRD_PARTY:
        logging.getLogger(name).setLevel(max(logging.WARNING, level))
