"""`loadgen emulator`: serve the Bedrock emulator on 127.0.0.1 for any Bedrock client."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import random
import signal
import sys
from typing import Any

from loadgen.emulator.batch import JobStore
from loadgen.emulator.batch_config import BatchConfig
from loadgen.emulator.config import EmulatorConfig
from loadgen.emulator.config_file import load_config_file
from loadgen.emulator.control_plane import ControlPlane
from loadgen.emulator.model import EmulatorModel
from loadgen.emulator.s3 import S3Server, S3Storage
from loadgen.emulator.server import serve
from loadgen.engine import event_loop
from loadgen.engine.clock import RealClock


def _reason(e: OSError) -> str:
    """The OS's words for a failed bind ("Cannot assign requested address"), without
    asyncio's "error while attempting to bind on address (...)" wrapping."""
    if isinstance(e.errno, int) and e.errno > 0:
        return os.strerror(e.errno)
    return e.strerror or str(e)  # a name lookup (socket.gaierror): "Name or service not known"


def cmd_emulator(args: Any) -> int:
    """`loadgen emulator`: serve until Ctrl-C or SIGTERM (exit 0, within about a second:
    open streams are closed after SHUTDOWN_GRACE_S); bad config exits 2, a port that
    cannot be bound exits 3."""
    try:
        config = load_config_file(args.config) if args.config else EmulatorConfig.defaults()
    except ValueError as e:
        print(f"loadgen emulator: {e}", file=sys.stderr)
        return 2
    # Everything imported so far (moto's server is a large module graph) lives until exit:
    # frozen, the collector skips it while serving and at interpreter exit, which otherwise
    # takes about 0.5 s more to stop (a stop within SHUTDOWN_GRACE_S + moto's 0.5 s is the aim)
    gc.freeze()
    clock = RealClock()
    model = EmulatorModel(config, clock=clock, rng=random.Random(args.seed), region=args.region,
                          draw_seed=str(args.seed))

    def stopping(n: int) -> None:
        print("loadgen emulator: stopping" + (f", closing {n} open connection(s)" if n else ""),
              file=sys.stderr, flush=True)

    async def main() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
        # S3 for batch jobs: moto's server on a free port beside the emulator. It starts in
        # a worker thread (loading moto takes about a second) once the runtime's port is
        # open, so bedrock-runtime clients are not kept waiting; the job store's S3 client
        # waits for it. Started only after the runtime's bind succeeded: a host that cannot
        # be bound ends the command at once (exit 3) with nothing else to stop.
        s3 = S3Server(host=args.host)
        # standalone, batch jobs run on the "fast" preset (a 100-record job ends in about
        # 1.5 s); run/simulate use the scenario-time model (emulator.toml [batch])
        store = JobStore(BatchConfig.load(timing="fast"), config, clock=clock, rng=random.Random(f"batch-{args.seed}"),
                         storage=S3Storage(s3, args.region))
        control = ControlPlane(store, region=args.region)
        async with contextlib.AsyncExitStack() as running:
            try:
                url = await running.enter_async_context(
                    serve(model, clock, host=args.host, port=args.port, on_stop=stopping, control=control))
            except OSError as e:
                print(f"loadgen emulator: cannot listen on {args.host}:{args.port}: {_reason(e)}", file=sys.stderr)
                return 3
            print(f"loadgen emulator listening on {url}", flush=True)
            try:
                s3_url = await asyncio.to_thread(s3.start)
            except OSError as e:
                print(f"loadgen emulator: cannot start S3 on {args.host}: {_reason(e)}", file=sys.stderr)
                return 3
            print(f"  bedrock-runtime  {url}\n  bedrock          {url}\n  s3               {s3_url}")
            print(f"export AWS_ENDPOINT_URL_BEDROCK_RUNTIME={url}\n"
                  f"export AWS_ENDPOINT_URL_BEDROCK={url}\n"
                  f"export AWS_ENDPOINT_URL_S3={s3_url}", flush=True)
            print(f"  Region {args.region}, latency {config.latency_name}, seed {args.seed}; "
                  "Ctrl-C stops", file=sys.stderr, flush=True)
            await stop.wait()
            # moto's server takes about 0.5 s to stop (werkzeug polls for shutdown):
            # overlap it with the emulator's own shutdown grace
            s3_stopped = asyncio.ensure_future(asyncio.to_thread(s3.stop))
        await s3_stopped
        return 0

    try:
        return event_loop.run(main)
    except KeyboardInterrupt:
        return 0
