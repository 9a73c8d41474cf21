#!/usr/bin/env bash
# Prepares the Prometheus reference client's text-format parser for the
# e2e test tests/tests/e2e/metrics.rs: a virtual environment at
# tests/prometheus/.venv with the pinned package from requirements.txt.
# Idempotent: a hash of requirements.txt is stamped in the venv, and
# nothing is installed while it matches and the parser imports.
# Environment: PYTHON (default python3) picks the interpreter for the venv.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/.venv"
py="$venv/bin/python"
python="${PYTHON:-python3}"
stamp="$venv/.fnhost-requirements"

say() { echo "prometheus setup.sh: $*"; }

# Concurrent runs must not build the venv twice.
exec 9>"$here/.setup.lock"
flock 9

want="$(sha256sum "$here/requirements.txt" | cut -d' ' -f1)"
check() { "$py" -c 'from prometheus_client.parser import text_string_to_metric_families' 2>/dev/null; }

if [[ -x "$py" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]] && check; then
    say "venv $venv is up to date"
    exit 0
fi
if [[ ! -x "$py" ]]; then
    say "creating venv $venv with $("$python" --version 2>&1)"
    "$python" -m venv "$venv"
fi
say "installing pinned packages from requirements.txt"
"$py" -m pip install --quiet --disable-pip-version-check -r "$here/requirements.txt"
check || { say "the parser does not import after install"; exit 1; }
echo "$want" >"$stamp"
say "ready: $py"
