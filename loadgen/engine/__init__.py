"""The engine: what to send, when, and what came back, one attempt at a time.

Owns the seeded schedule (`schedule.py`: arrivals, sizes and session draws every arm
shares, whole or one execution segment), the Converse request bodies
(`workload.py`), the runner that drives them on a clock (`runner.py`), the clocks
(`clock/`: real, warp, virtual), the aiobotocore transport (`transport.py`), the
client-side prompt-cache model (`expectations.py`), CountTokens prefix sizing
(`prefix_sizing.py`), the per-attempt record (`record.py`) and the event loop real-clock
processes run on (`event_loop.py`: uvloop unless opted out).

May import loadgen.scenario, loadgen.catalog and loadgen._toml only. Must not import
loadgen.emulator (its sibling: transports reach the emulator over HTTP, and the in-process
transport lives in loadgen.api), nor anything above it: loadgen.results, loadgen.report,
loadgen.api, loadgen.commands.
"""
