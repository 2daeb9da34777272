"""`loadgen emulator`: serve the Bedrock emulator on 127.0.0.1 for any Bedrock client."""

from __future__ import annotations

import asyncio
import contextlib
import random
import signal
import sys
from typing import Any

from loadgen.emulator.config import EmulatorConfig
from loadgen.emulator.config_file import load_config_file
from loadgen.emulator.model import EmulatorModel
from loadgen.emulator.server import serve
from loadgen.engine.clock import RealClock


def cmd_emulator(args: Any) -> int:
    """`loadgen emulator`: serve until Ctrl-C or SIGTERM (exit 0, within about a second:
    open streams are closed after SHUTDOWN_GRACE_S); bad config exits 2, a port that
    cannot be bound exits 3."""
    try:
        config = load_config_file(args.config) if args.config else EmulatorConfig.defaults()
    except ValueError as e:
        print(f"loadgen emulator: {e}", file=sys.stderr)
        return 2
    clock = RealClock()
    model = EmulatorModel(config, clock=clock, rng=random.Random(args.seed), region=args.region)

    def stopping(n: int) -> None:
        print("loadgen emulator: stopping" + (f", closing {n} open connection(s)" if n else ""),
              file=sys.stderr, flush=True)

    async def main() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
        try:
            async with serve(model, clock, host=args.host, port=args.port, on_stop=stopping) as url:
                print(f"loadgen emulator listening on {url}", flush=True)
                print(f"  Region {args.region}, latency {config.latency_name}, seed {args.seed}; "
                      "Ctrl-C stops", file=sys.stderr, flush=True)
                await stop.wait()
        except OSError as e:
            print(f"loadgen emulator: cannot listen on {args.host}:{args.port}: {e.strerror}", file=sys.stderr)
            return 3
        return 0

    try:
        return asyncio.run(main())
    except KeyboardInterrupt:
        return 0
