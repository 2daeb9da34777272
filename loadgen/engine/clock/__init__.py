"""Clocks: where scenario time comes from.

Every time loadgen records or waits for is *scenario time* in seconds since the run
started, read from a Clock (`protocol.Clock`). The kinds, one file each:

  RealClock    (real.py) scenario time = monotonic time since start (always for --target aws)
  WarpClock    (warp.py) scenario time = offset + scale x real elapsed, jumping over idle
               gaps (loadgen run against the emulator)
  VirtualClock (virtual.py) an event loop whose time only moves when nothing can run
               (loadgen simulate)
  SharedClock  (shared.py) scale x time since one start instant several processes share,
               no idle jumps (loadgen run --workers N and its emulator process)

The runner tells a clock two things, and only a WarpClock keeps count of them:
`driver()` for each task that drives load (a session, an open-loop dispatcher, a request
worker), and `in_flight()` around each request on the wire (plus `waiting()` while a
driver waits for an in-flight slot). Sleeps outside a driver (the in-process emulator
pacing its modelled latency, the progress display) never make a WarpClock jump.

Servers are started outside drivers: a task inherits the context it was spawned in, so
an HTTP server (the emulator) started inside a driver would make its handlers' latency
sleeps look like load-driving sleeps. The emulator never imports the engine; keeping its
server out of driver contexts is the caller's job (loadgen.api starts it first).
"""

from loadgen.engine.clock.protocol import Clock, Driver
from loadgen.engine.clock.real import RealClock
from loadgen.engine.clock.shared import SharedClock
from loadgen.engine.clock.virtual import VirtualClock
from loadgen.engine.clock.warp import WarpClock

__all__ = ["Clock", "Driver", "RealClock", "SharedClock", "VirtualClock", "WarpClock"]
