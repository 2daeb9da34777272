"""The `loadgen` command: argument parsing and dispatch, nothing else.

Exit codes: 0 ok; 1 a threshold failed; 2 bad input (scenario, flags);
3 the target failed (no credentials, emulator could not start); 130 interrupted.
"""

from __future__ import annotations

import argparse
import os
import sys

from loadgen import __version__
from loadgen.commands import flags, logs
from loadgen.exit_codes import EXIT_BAD_INPUT, EXIT_INTERRUPTED, EXIT_OK, EXIT_TARGET, EXIT_THRESHOLD


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse exits 2 already; keep the message short
        self.print_usage(sys.stderr)
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message}\n")


def _duration_flag(text: str) -> str:
    """--duration: a duration longer than zero (a zero-length run sends nothing and "passes")."""
    from loadgen.scenario.units import parse_duration  # deferred: loadgen.scenario loads the whole parser (~0.3 s); --version and --help must not wait

    try:
        seconds = parse_duration(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"must be longer than zero, got {text!r}")
    return text


def _time_scale_flag(text: str) -> float:
    """--time-scale: the same bounds as [target] time_scale."""
    from loadgen.scenario import time_scale_problem  # deferred: as parse_duration above (start-up time)

    try:
        scale = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}") from None
    if not scale > 0 or scale != scale or scale == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}")
    problem = time_scale_problem(scale)
    if problem:
        raise argparse.ArgumentTypeError(problem)
    return scale


def _workers_flag(text: str) -> int:
    """--workers: N >= 1 or `auto` (the cores)."""
    from loadgen.api.fanout import parse_workers  # deferred: as parse_duration above (start-up time)

    try:
        return parse_workers(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _cluster_flag(text: str) -> str:
    """--cluster: `ray` or `ray://HOST:PORT`."""
    from loadgen.api.fanout import check_cluster  # deferred: as parse_duration above (start-up time)

    try:
        return check_cluster(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


MAX_WORKERS = 1024  # processes for `run --workers`: far past the cores of any one machine; more is a slip


def _run_workers_flag(text: str) -> int:
    """run --workers: as _workers_flag, at most MAX_WORKERS (each is a process of its own)."""
    n = _workers_flag(text)
    if n > MAX_WORKERS:
        raise argparse.ArgumentTypeError(f"expected 1 to {MAX_WORKERS} processes or 'auto', got {text!r}")
    return n


_OUTPUT_HELP = ("jsonl: one JSON line per interval ([outputs] interval, default 10s of scenario time) and arm "
                "into intervals.jsonl in the results directory; jsonl=PATH to a new file; jsonl=- to stdout "
                "(the summary then goes to stderr)")
_HUGE_HELP = ("plan, simulate or run a schedule above the limit of 10 million requests per arm "
              "(refused by default: usually a unit slip)")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="loadgen",
        description="Load generator and capacity planner for Amazon Bedrock LLM traffic. "
        "Runs a TOML scenario against the built-in Bedrock emulator (default, no credentials) "
        "or real Bedrock (--target aws), and reports latency, throttling, prompt-cache "
        "warm/cold behaviour and cost per arm.",
        epilog=flags.exit_codes_epilog(meanings={EXIT_THRESHOLD: flags.SWEEP_THRESHOLD}),
        formatter_class=flags.HelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"loadgen {__version__}")
    flags.add_log_flags(p, top=True)
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    r = sub.add_parser("run", help="run a scenario (default target: built-in emulator)",
                       description="Run a scenario and write results/<scenario>-<UTC time>/.")
    r.add_argument("scenario", help="scenario TOML file")
    r.add_argument("--target", choices=["emulator", "aws"], help="override [target] kind")
    r.add_argument("--endpoint-url", help="send to this bedrock-runtime endpoint (e.g. a separate `loadgen "
                   "emulator`); such a run uses the real clock, as loadgen does not drive that endpoint's clock")
    r.add_argument("--region", help="override [target] region")
    r.add_argument("--time-scale", type=_time_scale_flag, help="warp clock scale (the built-in emulator only, "
                   "at most 1000: refused with --target aws or --endpoint-url, which run on the real clock)")
    r.add_argument("--duration", type=_duration_flag, help="override the scenario duration, e.g. 10m")
    r.add_argument("--max-requests", type=int, help="send at most this many requests per arm (first attempts; every arm gets the same ones)")
    r.add_argument("--max-cost-usd", type=float, help="stop dispatch when the running bill would cross this")
    r.add_argument("--arm", action="append", help="run only this arm (repeatable)")
    r.add_argument("--yes", action="store_true", help="do not ask for confirmation before sending to AWS")
    r.add_argument("--quiet", action="store_true", help="no live progress")
    r.add_argument("--allow-huge", action="store_true", help=_HUGE_HELP)
    r.add_argument("--cleanup", action="store_true", help="remove the S3 objects batch arms wrote (inputs, outputs) at the end of the run")
    r.add_argument("--output", action="append", metavar="KIND", help=_OUTPUT_HELP + "; cloudwatch: send metrics "
                   "to CloudWatch (PutMetricData; the scenario's [outputs.cloudwatch] table or its defaults, the "
                   "endpoint from standard AWS configuration, e.g. AWS_ENDPOINT_URL_CLOUDWATCH) (repeatable)")
    r.add_argument("--workers", type=_run_workers_flag, metavar="N|auto",
                   help="processes sending the schedule (default 1; auto: one per core). With more than 1, each "
                   "sends a share of the sessions or arrivals (execution segments) and the built-in emulator runs "
                   "in a process of its own, all on one shared clock (real, or scaled without skipping idle gaps); "
                   "--max-requests and --max-cost-usd stay one budget for the whole run. With --cluster: the "
                   "number of segments (default: the cluster's CPUs)")
    r.add_argument("--cluster", type=_cluster_flag, metavar="ray|ray://HOST:PORT",
                   help="send the segments from Ray actors (one CPU each; needs pip install 'loadgen[ray]'): `ray` "
                   "joins the Ray running on this machine or starts one; ray://HOST:PORT connects to a cluster, "
                   "which cannot reach the built-in emulator (pass --endpoint-url or --target aws)")
    r.set_defaults(func=_cmd_run)

    s = sub.add_parser("simulate", help="run a scenario in virtual time against the in-process emulator model",
                       description="Simulate a scenario in virtual time (hours in seconds) and write "
                       "results/<scenario>-<UTC time>/ as `run` does; --sweep runs what-if points, "
                       "--find-max-rate searches the highest arrival rate within the thresholds.")
    s.add_argument("scenario", help="scenario TOML file")
    s.add_argument("--sweep", action="append", metavar="KEY=V1,V2,...",
                   help="sweep a scenario key over values (repeatable: the cross product), "
                   "e.g. sessions.think_time.median=1m,6m,20m or arms.cache_ttl=5m,1h")
    s.add_argument("--find-max-rate", action="store_true",
                   help="open-loop scenarios: the highest arrival rate per arm within the thresholds")
    s.add_argument("--workers", type=_workers_flag, metavar="N|auto",
                   help="run --sweep points and --find-max-rate trials in N processes at once (auto: one per "
                   "core; default 1). Each point stays whole in one process, so results equal the serial ones; "
                   "a plain simulation is one scenario and always runs in one process")
    s.add_argument("--cluster", type=_cluster_flag, metavar="ray|ray://HOST:PORT",
                   help="run --sweep points and --find-max-rate trials as Ray tasks: `ray` joins the Ray running "
                   "on this machine or starts one; ray://HOST:PORT connects to a cluster (needs pip install "
                   "'loadgen[ray]'); --workers then caps the tasks in flight (default: the cluster's CPUs)")
    s.add_argument("--duration", type=_duration_flag, help="override the scenario duration, e.g. 10m")
    s.add_argument("--max-requests", type=int, help="send at most this many requests per arm (first attempts; every arm gets the same ones)")
    s.add_argument("--arm", action="append", help="simulate only this arm (repeatable)")
    s.add_argument("--quiet", action="store_true", help="print only the summary")
    s.add_argument("--allow-huge", action="store_true", help=_HUGE_HELP)
    s.add_argument("--output", action="append", metavar="KIND", help=_OUTPUT_HELP + " (cloudwatch is for `run`: "
                   "virtual time has no real time to stamp metrics with)")
    s.set_defaults(func=_cmd_simulate)

    v = sub.add_parser("validate", help="parse and check a scenario, print its plan; sends nothing "
                                        "(with --target aws: only free CountTokens calls)",
                       description="Parse and check a scenario and print its plan: requests per arm, peak "
                       "requests and tokens per minute, the cost range per arm. Sends nothing (with "
                       "--target aws: only Bedrock's free CountTokens calls). Every problem is printed "
                       "as file:line: key: message.")
    v.add_argument("scenario", help="scenario TOML file")
    v.add_argument("--target", choices=["emulator", "aws"],
                   help="override [target] kind; aws also measures each arm's prefix with Bedrock's CountTokens")
    v.add_argument("--endpoint-url", help="bedrock-runtime endpoint for those CountTokens calls")
    v.add_argument("--allow-huge", action="store_true", help=_HUGE_HELP)
    v.set_defaults(func=_cmd_validate)

    e = sub.add_parser("emulator", help="serve the Bedrock emulator on 127.0.0.1 for any Bedrock client",
                       description="Serve the Bedrock emulator (bedrock-runtime, the bedrock control plane "
                       "and S3 through moto) on 127.0.0.1 until Ctrl-C, and print the AWS_ENDPOINT_URL_* "
                       "exports an unmodified boto3 client needs.")
    e.add_argument("--host", default="127.0.0.1", help="the address to listen on, for the runtime, control "
                   "plane and S3 (default 127.0.0.1; one this machine cannot bind: exit 3)")
    e.add_argument("--port", type=flags.port_flag, default=0, help="0..65535; 0 picks a free port (printed)")
    e.add_argument("--config", help="a scenario file (its [emulator] table is used) or a file holding only that table")
    e.add_argument("--seed", type=int, default=0, help="seed of the emulator's random draws (latency, output lengths, "
                   "faults, batch jobs); default 0")
    e.add_argument("--region", type=flags.region_flag, default="us-east-1", help="the caller's Region for requests without a SigV4 "
                   "credential scope (a signed request is answered as from the Region it signed for)")
    e.set_defaults(func=_cmd_emulator)

    pr = sub.add_parser("pricing", help="show the price catalog in force",
                        description="Print the price catalog in force (USD per 1M tokens per model, "
                        "profile kind and service tier, with its sources), with a scenario's [pricing] "
                        "overrides applied when --scenario is given.")
    pr.add_argument("--scenario", help="apply this scenario's [pricing] overrides")
    pr.set_defaults(func=_cmd_pricing)

    rep = sub.add_parser("report", help="tables, plots, report.html and thresholds from a results directory",
                         description="Re-read a results directory: print per-arm detail and thresholds, "
                         "write DIR/plots/*.png and DIR/report.html. Exit 1 if a threshold fails.")
    rep.add_argument("dir", help="a results directory (holding summary.json)")
    rep.add_argument("--no-plots", action="store_true", help="print only; write no plots and no report.html")
    rep.set_defaults(func=_cmd_report)

    cmp_ = sub.add_parser("compare", help="arms of one run, or the same arms across runs, side by side",
                          description="Compare arms of one results directory, or same-named arms across "
                          "several (labelled run/arm), each figure with its delta against the first.")
    cmp_.add_argument("dirs", nargs="+", metavar="DIR", help="results directories")
    cmp_.set_defaults(func=_cmd_compare)

    cal = sub.add_parser(
        "calibrate", help="fit the emulator's latency model to a real run's requests.jsonl",
        description="Fit the emulator's latency model (time to first token, prefill and cache-read "
        "slopes, output speed, cross-Region penalty) to the ok, streamed attempts of a results "
        "directory, and print an [emulator.latency] table with the fit quality in comments "
        "(loadgen emulator --config FILE reads it; so does a scenario). Writes calibration.png "
        "(observed vs fitted) beside --out, else in DIR/plots/.")
    cal.add_argument("dir", help="a results directory (holding requests.jsonl), e.g. from `loadgen run --target aws`")
    cal.add_argument("--out", metavar="FILE", help="write the table to FILE (refused if it exists) instead of printing it")
    cal.add_argument("--force", action="store_true", help="replace an existing --out FILE")
    cal.add_argument("--model", help="the model to fit when the run called several (any id form)")
    cal.add_argument("--keep-defaults", action="store_true",
                     help="keep the shipped value of a parameter the data cannot identify (marked in the "
                     "table) instead of refusing")
    cal.add_argument("--no-plot", action="store_true", help="write no calibration.png")
    cal.set_defaults(func=_cmd_calibrate)

    _machine_readable_and_ci(sub)
    return p


# ---- flags shared by several commands (commands/flags.py): output formats, results
# directory, --set, --junit, logging, and every command's "exit codes" epilog
_EXIT_CODES = {
    "run": flags.ALL_CODES,
    "simulate": (EXIT_OK, EXIT_THRESHOLD, EXIT_BAD_INPUT, EXIT_TARGET, EXIT_INTERRUPTED),  # 3: --cluster unreachable
    "validate": (EXIT_OK, EXIT_BAD_INPUT),
    "emulator": (EXIT_OK, EXIT_BAD_INPUT, EXIT_TARGET),
    "pricing": (EXIT_OK, EXIT_BAD_INPUT),
    "report": (EXIT_OK, EXIT_THRESHOLD, EXIT_BAD_INPUT),
    "compare": (EXIT_OK, EXIT_BAD_INPUT),
    "calibrate": (EXIT_OK, EXIT_BAD_INPUT),
}
_NO_THRESHOLDS = "done"
_MEANINGS = {  # a command's own words for a code, where the shared ones say too little
    "simulate": {EXIT_THRESHOLD: flags.SWEEP_THRESHOLD},  # the one command that sweeps
    "calibrate": {EXIT_OK: "fitted",
                  EXIT_BAD_INPUT: "bad input, or a parameter the data cannot identify (named, with the "
                  "reason; nothing written)"},
}


def _machine_readable_and_ci(sub: argparse._SubParsersAction) -> None:
    cmds = sub.choices
    flags.add_format_flag(cmds["run"], "summary.json and the results path")
    flags.add_format_flag(cmds["simulate"], "summary.json and the results path (sweep.json / maxrate.json)")
    flags.add_format_flag(cmds["validate"], "the plan")
    flags.add_format_flag(cmds["pricing"], "the catalog in force")
    flags.add_format_flag(cmds["calibrate"], "the fitted parameters, the fit's quality and the table")
    flags.add_format_flag(cmds["report"], "the report (summary.json, the verdicts, the plots written)")
    flags.add_format_flag(cmds["compare"], "the runs, notes and comparisons")
    flags.add_results_dir_flags(cmds["run"])
    flags.add_results_dir_flags(cmds["simulate"], what="the results directory (a sweep's or "
                                "find-max-rate's parent directory)")
    for name in ("run", "simulate", "validate"):
        flags.add_set_flag(cmds[name])
    for name in ("run", "simulate", "report"):
        flags.add_junit_flag(cmds[name])
    for name, parser in cmds.items():
        flags.add_log_flags(parser, top=False)
        codes = _EXIT_CODES.get(name, flags.ALL_CODES)
        parser.epilog = flags.exit_codes_epilog(codes, ok=None if EXIT_THRESHOLD in codes else _NO_THRESHOLDS,
                                                meanings=_MEANINGS.get(name))
        parser.formatter_class = flags.HelpFormatter


def _cmd_run(args: argparse.Namespace) -> int:
    from loadgen.commands.run import cmd_run  # deferred: only the chosen command's modules load (start-up time)

    return cmd_run(args)


def _cmd_simulate(args: argparse.Namespace) -> int:
    from loadgen.commands.simulate import cmd_simulate  # deferred: only the chosen command's modules load (start-up time)

    return cmd_simulate(args)


def _cmd_validate(args: argparse.Namespace) -> int:
    from loadgen.commands.validate import cmd_validate  # deferred: only the chosen command's modules load (start-up time)

    return cmd_validate(args)


def _cmd_emulator(args: argparse.Namespace) -> int:
    from loadgen.commands.emulator import cmd_emulator  # deferred: only the chosen command's modules load (start-up time)

    return cmd_emulator(args)


def _cmd_report(args: argparse.Namespace) -> int:
    from loadgen.commands.report import cmd_report  # deferred: only the chosen command's modules load (start-up time)

    return cmd_report(args)


def _cmd_compare(args: argparse.Namespace) -> int:
    from loadgen.commands.compare import cmd_compare  # deferred: only the chosen command's modules load (start-up time)

    return cmd_compare(args)


def _cmd_calibrate(args: argparse.Namespace) -> int:
    from loadgen.commands.calibrate import cmd_calibrate  # deferred: only the chosen command's modules load (start-up time)

    return cmd_calibrate(args)


def _cmd_pricing(args: argparse.Namespace) -> int:
    from loadgen.commands.pricing import cmd_pricing  # deferred: only the chosen command's modules load (start-up time)

    return cmd_pricing(args)


class _PipeGuard:
    """stdout that survives its reader going away (`loadgen validate f.toml | head -1`).

    Like other command-line tools, a closed pipe ends the output, not the command: the
    first BrokenPipeError points fd 1 at /dev/null (so the interpreter's final flush cannot
    raise either) and later output is dropped; the command finishes and keeps its exit code,
    so a run still writes its results.
    """

    def __init__(self, stream) -> None:
        self._stream = stream

    def _closed(self) -> None:
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self._stream.fileno())
            os.close(devnull)
        except (OSError, ValueError, AttributeError):
            pass  # not a real file descriptor (e.g. captured in tests): dropping is enough
        self._stream = open(os.devnull, "w")

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            self._closed()
            return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            self._closed()

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # a bad flag (exit 2, message printed), --help or --version: a return code
        return e.code if isinstance(e.code, int) else EXIT_BAD_INPUT
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_BAD_INPUT
    logs.configure(args.verbose, args.log_level, os.environ)
    stdout = sys.stdout
    if stdout is not None and not isinstance(stdout, _PipeGuard):
        sys.stdout = _PipeGuard(stdout)
    try:
        code = args.func(args)
        sys.stdout.flush()
        return code
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    finally:
        if isinstance(sys.stdout, _PipeGuard) and sys.stdout is not stdout:
            guard, sys.stdout = sys.stdout, stdout
            if guard._stream is not stdout:  # the pipe closed: the original must not flush into it again
                try:
                    stdout.flush()
                except BrokenPipeError:
                    pass
