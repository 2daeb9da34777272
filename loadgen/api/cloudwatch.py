"""The CloudWatch sink: a run's interval figures sent with PutMetricData through
aiobotocore's `cloudwatch` client, in the background, never slowing the generator.

The aggregator (results/intervals.py) hands this sink every closed interval; it adds
whole intervals up to the CloudWatch interval (`[outputs.cloudwatch] interval`), turns
them into datums (results/cloudwatch_data.py) stamped with the wall-clock time the
interval closed, and appends them to a bounded queue: when the queue holds `max_queue`
datums the oldest are dropped and counted. `send_loop` takes calls' worth of datums off
the queue and sends them; a call that still fails after botocore's retries (standard
mode, 3 attempts, short timeouts) counts its datums as failed and the loop goes on. So a
slow, throttling or absent CloudWatch costs the run nothing but those datums, and
summary.json says how many (`outputs.cloudwatch`).

Endpoint, credentials and the rest come from the standard AWS configuration (a
Session's credential chain, `AWS_ENDPOINT_URL_CLOUDWATCH` / `AWS_ENDPOINT_URL`); the
Region is `[outputs.cloudwatch] region` or the scenario's [target] region. Nothing here
logs credentials: an error is kept as its class and message only.
"""

from __future__ import annotations

import collections
import datetime as dt
from typing import Any, Sequence

import anyio
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session

from loadgen.results.cloudwatch_data import arm_datums, calls, dimensions
from loadgen.results.intervals import ArmInterval, Interval
from loadgen.results.metrics import ArmInfo, Metrics
from loadgen.scenario import Scenario
from loadgen.scenario.outputs import CloudWatchOutput

DRAIN_S = 10.0          # real seconds the end of a run waits for the last datums
IDLE_S = 0.2            # real seconds between looks at an empty queue
ERROR_CHARS = 200
# botocore: 3 attempts with standard-mode backoff; a CloudWatch that does not answer
# within seconds is down as far as a load run is concerned
CLIENT_CONFIG = AioConfig(retries={"mode": "standard", "total_max_attempts": 3}, connect_timeout=2,
                          read_timeout=5, max_pool_connections=2)


class CloudWatchSink:
    """Interval figures -> a bounded datum queue -> PutMetricData (see the module doc)."""

    def __init__(self, cfg: CloudWatchOutput, sc: Scenario, arms: Sequence[ArmInfo], *, base_interval: float,
                 session: Any = None) -> None:
        self.cfg = cfg
        self.region = cfg.region or sc.target.region
        self.infos = {a.name: a for a in arms}
        self.dims = {a.name: dimensions(cfg.dimensions, sc.name, a) for a in arms}
        self.group = max(1, round(cfg.interval / base_interval))   # base intervals per datum
        self._session = session or get_session()
        self._pending: dict[str, ArmInterval] = {}
        self._in_group = 0
        self._last_wall: float | None = None
        self.queue: collections.deque[dict] = collections.deque()
        self._in_flight = 0
        self.sent = self.dropped = self.failed = self.calls = self.failed_calls = 0
        self.last_error: str | None = None
        self.input_closed = False
        self.dead = False   # the client could not be made: every datum fails at once

    # ---- fed by the aggregator (on the event loop, between requests: never awaits) ----

    def on_interval(self, iv: Interval) -> None:
        for name, ai in iv.arms.items():
            acc = self._pending.get(name)
            if acc is None:
                acc = self._pending[name] = ArmInterval(Metrics([]))
            acc.merge(ai)
        self._in_group += 1
        self._last_wall = iv.wall if iv.wall is not None else self._last_wall
        if self._in_group >= self.group:
            self._emit()

    def close(self) -> None:
        """No more intervals: the last, partial group is sent as it is."""
        if self._in_group:
            self._emit()
        self.input_closed = True

    def _emit(self) -> None:
        when = dt.datetime.fromtimestamp(self._last_wall, dt.timezone.utc) if self._last_wall is not None \
            else dt.datetime.now(dt.timezone.utc)
        for name, ai in self._pending.items():
            for d in arm_datums(ai, self.infos[name], self.dims[name], when, self.cfg.storage_resolution):
                if self.dead:
                    self.failed += 1
                    continue
                if len(self.queue) >= self.cfg.max_queue:
                    self.queue.popleft()   # the oldest goes: a dashboard wants the present
                    self.dropped += 1
                self.queue.append(d)
        self._pending = {}
        self._in_group = 0

    # ---- the background sender -----------------------------------------------------

    async def send_loop(self) -> None:
        """Send queued datums until cancelled (a call cut off by the cancel counts as dropped).
        A client that cannot even be made (bad AWS configuration) fails every datum, not the run."""
        try:
            async with self._session.create_client("cloudwatch", region_name=self.region,
                                                   config=CLIENT_CONFIG) as client:
                await self._send(client)
        except Exception as e:  # noqa: BLE001 - the run goes on without CloudWatch
            self.last_error = f"{type(e).__name__}: {e}"[:ERROR_CHARS]
            self.dead = True
            self.failed += len(self.queue)
            self.queue.clear()

    async def _send(self, client: Any) -> None:
        while True:
            if not self.queue:
                await anyio.sleep(IDLE_S)
                continue
            batch = self._take()
            self._in_flight = len(batch)
            try:
                await client.put_metric_data(Namespace=self.cfg.namespace, MetricData=batch)
            except anyio.get_cancelled_exc_class():
                self.dropped += len(batch)
                raise
            except Exception as e:  # noqa: BLE001 - any failure of the call loses these datums, not the run
                self.failed += len(batch)
                self.failed_calls += 1
                self.last_error = f"{type(e).__name__}: {e}"[:ERROR_CHARS]
            else:
                self.sent += len(batch)
                self.calls += 1
            finally:
                self._in_flight = 0

    def _take(self) -> list[dict]:
        first = calls(list(self.queue)[:1000])[0]
        for _ in first:
            self.queue.popleft()
        return first

    async def drain(self, timeout_s: float = DRAIN_S) -> None:
        """Wait (at most `timeout_s` real seconds) until the queue is sent."""
        with anyio.move_on_after(timeout_s):
            while self.queue or self._in_flight:
                await anyio.sleep(0.02)

    def abandon(self) -> None:
        """The run is over: whatever is still queued will not be sent (counted as dropped)."""
        if not self.input_closed:
            self.close()
        self.dropped += len(self.queue)
        self.queue.clear()

    def figures(self) -> dict:
        """summary.json `outputs.cloudwatch`: where the datums went and how many were lost."""
        return {"namespace": self.cfg.namespace, "region": self.region, "interval_s": self.cfg.interval,
                "storage_resolution": self.cfg.storage_resolution, "dimensions": list(self.cfg.dimensions),
                "sent": self.sent, "dropped": self.dropped, "failed": self.failed, "calls": self.calls,
                "failed_calls": self.failed_calls, "last_error": self.last_error}
