"""The built-in emulator's batch back end for `loadgen run`: moto's S3 server and the
emulator's job store served as the `bedrock` control plane.

Its own module because moto's server takes about 1.6 s to import: `run` imports it only
when a scenario has a batch arm (loadgen.api.run._target).
"""

from __future__ import annotations

import logging
import random
from typing import Any

from loadgen.emulator.batch import JobStore
from loadgen.emulator.batch_config import BatchConfig
from loadgen.emulator.control_plane import ControlPlane
from loadgen.emulator.s3 import S3Server, S3Storage

_log = logging.getLogger(__name__)  # -v: moto's address (commands/logs.py)


class EmulatorBatchBackend:
    """For `loadgen run` against the built-in emulator with a batch arm: moto's S3 server on
    127.0.0.1 and the emulator's job store on the run's clock (the realistic job timing,
    emulator.toml [batch]), served as the `bedrock` control plane beside bedrock-runtime."""

    def __init__(self, sc: Any, clock: Any, emulator_config: Any) -> None:
        self.server = S3Server(host="127.0.0.1")
        self.s3_url = self.server.start()
        _log.info("moto S3 server for batch arms listening on %s", self.s3_url)
        store = JobStore(BatchConfig.load(), emulator_config, clock=clock,
                         rng=random.Random(f"{sc.seed}:batch"), storage=S3Storage(self.s3_url, sc.target.region))
        self.control = ControlPlane(store, region=sc.target.region)

    def close(self) -> None:
        self.server.stop()
