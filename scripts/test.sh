#!/usr/bin/env bash
# Create a fresh .venv, install loadgen with its test extra, run the whole suite.
# (--clear: never trust what an earlier install left behind; pip's cache keeps it quick.)
# pytest exits 5 when no test ran; that is a failure here, as is any other non-zero code.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
"$PY" -m venv --clear .venv
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -e '.[test]'
# -n auto: one worker per core (at most 4: the end-to-end cases start their own emulator
# and time real runs, so more workers than cores would only add noise).
.venv/bin/python -m pytest -q -n auto --maxprocesses 4 "$@"
