"""The built-in Bedrock emulator (docs/emulator.md).

Owns Bedrock's behaviour as pure computation on an injected clock and rng (model.py, which
decides each request: routing.py, quotas.py, tiers.py, cache.py, window.py, request.py,
errors.py; its decision is a Plan, plan.py), the `[emulator]` table (config.py; a config
file: config_file.py) and the HTTP shell speaking the real wire protocol (server.py,
stream.py, eventstream.py). The `bedrock` control plane beside it: batch jobs as a pure
model on a clock (batch.py, with batch_requests.py, batch_records.py, batch_config.py and
storage.py), their HTTP routes (control_plane.py), profile and model listings from the
catalog (profiles_api.py) and moto's S3 server for their input and output (s3.py).

Sits beside loadgen.engine in the layers and must not import it, nor loadgen.api,
loadgen.results, loadgen.report or loadgen.commands: it may import loadgen.catalog,
loadgen.scenario and loadgen._toml only. Callers pass it what it needs (a clock, an rng).
"""
