#!/usr/bin/env bash
# Runs the Python SDK's checks: prepares the venv and installs the package
# (setup.sh), type-checks the package (mypy --strict, configured in
# pyproject.toml), then runs pytest. Extra arguments go to pytest. Exits
# non-zero on failure, and also when no tests were collected (pytest's exit
# code 5 is passed through, never hidden).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
"$here/setup.sh"
cd "$here"
echo "run-tests.sh: .venv/bin/mypy (strict, fnhost_worker)"
"$here/.venv/bin/mypy"
# The pytest command, not `python -m pytest`: -m would put this directory on
# sys.path, and the tests are to import the installed package.
echo "run-tests.sh: .venv/bin/pytest tests $*"
exec "$here/.venv/bin/pytest" -q -p no:cacheprovider tests "$@"
