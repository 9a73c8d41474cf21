#!/usr/bin/env bash
# Prepares the official Tencent Cloud SCF Python SDK for the e2e test
# tests/tests/e2e/scf.rs: a virtual environment at tests/scf-sdk/.venv with
# the pinned packages from requirements.txt.
# Idempotent and fast when done: a hash of requirements.txt is stamped in the
# venv, and nothing is installed while it matches and the SDK imports.
# Environment: PYTHON (default python3) picks the interpreter for the venv.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/.venv"
py="$venv/bin/python"
python="${PYTHON:-python3}"
stamp="$venv/.fnhost-requirements"

say() { echo "scf-sdk setup.sh: $*"; }

# Concurrent runs must not build the venv twice.
exec 9>"$here/.setup.lock"
flock 9

want="$(sha256sum "$here/requirements.txt" | cut -d' ' -f1)"
check() { "$py" -c 'from tencentcloud.scf.v20180416 import scf_client, models' 2>/dev/null; }

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
check || { say "the SDK does not import after install"; exit 1; }
echo "$want" >"$stamp"
say "ready: $py"
