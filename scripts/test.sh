#!/usr/bin/env bash
# Create .venv (if missing), install loadgen with its test extra, run the whole suite.
# pytest exits 5 when no test ran; that is a failure here, as is any other non-zero code.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then "$PY" -m venv .venv; fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -e '.[test]'
.venv/bin/python -m pytest -q "$@"
