#!/usr/bin/env bash
# Runs the Python SDK's unit tests: prepares the venv (setup.sh), then pytest.
# Extra arguments go to pytest. Exits non-zero on failure, and also when no
# tests were collected (pytest's exit code 5 is passed through, never hidden).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
"$here/setup.sh"
cd "$here"
echo "run-tests.sh: .venv/bin/python -m pytest tests $*"
exec "$here/.venv/bin/python" -m pytest -q -p no:cacheprovider tests "$@"
