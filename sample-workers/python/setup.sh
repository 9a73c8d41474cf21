#!/usr/bin/env bash
# Prepares the Python worker SDK for development and the sample app:
#   1. a virtual environment at sample-workers/python/.venv with the pinned
#      packages of requirements.txt (the package's dependencies) and
#      requirements-dev.txt (codegen, build backend, pytest, mypy),
#   2. the package (fnhost-worker) built as a wheel with the pinned backend
#      (python -m build --no-isolation) and installed into the venv: that
#      gives the venv `import fnhost_worker` and the `fnhost-python-worker`
#      command that ../python-app/worker.config.json names.
# The gRPC / protobuf code in fnhost_worker/_proto is checked in (made by
# gen_proto.py; tests/test_proto.py checks it matches proto/protos).
# Idempotent: each step is skipped when its inputs are unchanged (hash stamps).
# Environment: PYTHON (default python3) picks the interpreter for the venv.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/.venv"
python="${PYTHON:-python3}"

say() { echo "setup.sh: $*"; }
hash_of() { cat "$@" | sha256sum | cut -d' ' -f1; }

# Concurrent runs (e.g. two test suites) must not build the venv twice.
exec 9>"$here/.setup.lock"
flock 9

req_hash="$(hash_of "$here/requirements.txt" "$here/requirements-dev.txt")"
if [[ -x "$venv/bin/python" && -f "$venv/.fnhost-requirements" \
      && "$(cat "$venv/.fnhost-requirements")" == "$req_hash" ]]; then
    say "venv $venv is up to date"
else
    if [[ ! -x "$venv/bin/python" ]]; then
        say "creating venv $venv with $("$python" --version 2>&1)"
        "$python" -m venv "$venv"
    fi
    say "installing pinned packages from requirements.txt and requirements-dev.txt"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
        -r "$here/requirements.txt" -r "$here/requirements-dev.txt"
    echo "$req_hash" > "$venv/.fnhost-requirements"
fi

# Earlier versions of this script put the SDK's source directory on the
# venv's sys.path; the installed package replaces that.
site="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
rm -f "$site/fnhost_worker_sdk.pth"

# The wheel's inputs: the package's files (names and contents), the build
# configuration and the pinned tools.
pkg_hash="$(cd "$here" && {
    find fnhost_worker -name __pycache__ -prune -o -type f -print | LC_ALL=C sort | xargs sha256sum
    sha256sum pyproject.toml README.md
    echo "$req_hash"
} | sha256sum | cut -d' ' -f1)"
if [[ -x "$venv/bin/fnhost-python-worker" && -f "$venv/.fnhost-package" \
      && "$(cat "$venv/.fnhost-package")" == "$pkg_hash" ]]; then
    say "fnhost-worker in $venv is up to date"
else
    say "building the fnhost-worker wheel and installing it into $venv"
    dist="$(mktemp -d "$venv/.dist.XXXXXX")"
    trap 'rm -rf "$dist"' EXIT
    "$venv/bin/python" -m build --no-isolation --wheel --outdir "$dist" "$here" >"$dist/build.log" 2>&1 \
        || { cat "$dist/build.log"; exit 1; }
    # --no-deps: the pinned dependencies are installed above.
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps --force-reinstall \
        "$dist"/fnhost_worker-*.whl
    rm -rf "$dist"
    trap - EXIT
    echo "$pkg_hash" > "$venv/.fnhost-package"
fi

say "ready: $venv/bin/fnhost-python-worker"
