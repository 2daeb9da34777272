"""Flags several commands share, checks of flag values, and the "exit codes" section of
every `--help`.

Kept apart from cli.py (which only declares each command's own flags) and free of
heavy imports: `loadgen --help` must not load the engine. The meanings of the codes
come from loadgen/exit_codes.py; each command lists the ones it can return.
"""

from __future__ import annotations

import argparse

from loadgen.exit_codes import EXIT_BAD_INPUT, EXIT_INTERRUPTED, EXIT_OK, EXIT_TARGET, EXIT_THRESHOLD

_MEANING = {
    EXIT_OK: "done; every threshold passed",
    EXIT_THRESHOLD: "a threshold failed",
    EXIT_BAD_INPUT: "bad input (scenario, flag or file); nothing was sent or written",
    EXIT_TARGET: "the target failed (no credentials, the emulator could not start)",
    EXIT_INTERRUPTED: "interrupted (Ctrl-C / SIGTERM); the results written so far are kept",
}

# code 1 for the commands that sweep (`simulate --sweep`) and for `loadgen --help`
SWEEP_THRESHOLD = "a threshold failed (for a sweep: any point's)"

ALL_CODES = (EXIT_OK, EXIT_THRESHOLD, EXIT_BAD_INPUT, EXIT_TARGET, EXIT_INTERRUPTED)

LOG_LEVELS = ("debug", "info", "warning", "error")


class HelpFormatter(argparse.HelpFormatter):
    """argparse's formatter, but a text with line breaks (the exit codes) keeps them."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if "\n" in text:
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)


def exit_codes_epilog(codes: tuple[int, ...] = ALL_CODES, *, ok: str | None = None,
                      meanings: dict[int, str] | None = None) -> str:
    """The "exit codes:" block of a command's --help; `ok` rewords code 0 for commands
    without thresholds, `meanings` any code in a command's own words."""
    lines = ["exit codes:"]
    for code in codes:
        meaning = (meanings or {}).get(code) or (ok if (code == EXIT_OK and ok) else _MEANING[code])
        lines.append(f"  {code:<4} {meaning}")
    return "\n".join(lines)


def port_flag(text: str) -> int:
    """--port: a TCP port, 0 for a free one (99999 used to wrap to 34463 silently)."""
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"expected 0..65535, got {text!r}")
    return port


def region_flag(text: str) -> str:
    """--region: an AWS Region name, checked as `run --region` and [target] region are."""
    from loadgen.catalog.profiles import region_problem  # deferred: `loadgen --help` loads no catalog (start-up time)

    problem = region_problem(text)
    if problem:
        raise argparse.ArgumentTypeError(problem)
    return text


def add_log_flags(p: argparse.ArgumentParser, *, top: bool) -> None:
    """-v/--verbose and --log-level, accepted before or after the command name.

    On the top-level parser they set the defaults; on a subparser they default to
    SUPPRESS, so `loadgen -v run x.toml` is not undone by the subparser's default.
    """
    default_v = 0 if top else argparse.SUPPRESS
    default_l = None if top else argparse.SUPPRESS
    p.add_argument("-v", "--verbose", action="count", default=default_v,
                   help="log more on stderr: -v info (emulator and S3 start, run stops), "
                   "-vv debug (every retry and throttle); default: warnings only")
    p.add_argument("--log-level", choices=LOG_LEVELS, type=str.lower, default=default_l,
                   help="the same as -v/-vv by name (wins over -v); see README 'Logging'")


def add_format_flag(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--format", choices=["text", "json"], default="text",
                   help=f"json: print {what} as ONE JSON document on stdout and nothing else "
                   "(progress goes to stderr); docs/results-format.md lists its keys")


def add_results_dir_flags(p: argparse.ArgumentParser, *, what: str = "the results directory") -> None:
    """--out PARENT or --results-dir DIR (one or the other)."""
    g = p.add_mutually_exclusive_group()
    g.add_argument("--out", default="results", metavar="PARENT",
                   help=f"parent folder for {what}, named <scenario>-<UTC time> (default: results)")
    g.add_argument("--results-dir", metavar="DIR",
                   help=f"write {what} to exactly DIR (parents made); an existing non-empty DIR is "
                   "refused (exit 2): results are never overwritten")


def add_set_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="set a scenario key before anything else (repeatable): the key paths and "
                   "values of --sweep with one value, e.g. --set arrivals.rate=20/s "
                   "--set arms.ttl-5m.cache_ttl=1h")


def add_junit_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--junit", metavar="FILE",
                   help="also write the threshold verdicts as JUnit XML to FILE (one testcase per "
                   "threshold and arm; a FAIL is a <failure>), for CI test reports")
