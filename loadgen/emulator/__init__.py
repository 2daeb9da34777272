"""The built-in Bedrock emulator (docs/emulator.md).

Owns Bedrock's behaviour as pure computation on an injected clock and rng (model.py, which
decides each request: routing.py, quotas.py, tiers.py, cache.py, window.py, request.py,
errors.py; its decision is a Plan, plan.py), the `[emulator]` table (config.py; a config
file: config_file.py) and the HTTP shell speaking the real wire protocol (server.py,
stream.py, eventstream.py).

Sits beside loadgen.engine in the layers and must not import it, nor loadgen.api,
loadgen.results, loadgen.report or loadgen.commands: it may import loadgen.catalog,
loadgen.scenario and loadgen._toml only. Callers pass it what it needs (a clock, an rng).
"""
