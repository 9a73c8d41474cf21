#!/usr/bin/env bash
# A virtual environment with pinned packages, for the tests' Python helpers:
#   pinned-venv.sh <name> <dir> <python check>
# builds <dir>/.venv from <dir>/requirements.txt. Idempotent and fast when
# done: a hash of requirements.txt is stamped in the venv, and nothing is
# installed while it matches and <python check> succeeds.
# Environment: PYTHON (default python3) picks the interpreter for the venv.
set -euo pipefail

name="$1"
here="$2"
check_code="$3"
venv="$here/.venv"
py="$venv/bin/python"
python="${PYTHON:-python3}"
stamp="$venv/.fnhost-requirements"

say() { echo "$name setup.sh: $*"; }

# Concurrent runs must not build the venv twice.
exec 9>"$here/.setup.lock"
flock 9

want="$(sha256sum "$here/requirements.txt" | cut -d' ' -f1)"
check() { "$py" -c "$check_code" 2>/dev/null; }

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
check || { say "the packages do not import after install"; exit 1; }
echo "$want" >"$stamp"
say "ready: $py"
