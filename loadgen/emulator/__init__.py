"""The built-in Bedrock emulator: pure behaviour (model.py) behind a wire-faithful
HTTP shell (server.py). See docs/emulator.md."""
