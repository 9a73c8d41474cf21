#!/usr/bin/env bash
# Prepares the interop Python worker (../shared/interop/python-worker-4.34.0,
# Azure's classic worker, what Core Tools 4.x ships for Python 3.11) for the
# e2e tests in tests/tests/e2e/workers_dir.rs, all under tests/interop/
# (gitignored):
#
#   .venv/           Python 3.11 venv with the worker's pins from its
#                    pyproject.toml (see ../shared/interop/README.md) and
#                    the HTTP streaming extension
#   .build/python/   the worker as Core Tools ships it in
#                    workers/python/3.11/LINUX/X64/: worker.py and the
#                    azure_functions_worker package with its generated
#                    protocol code
#
# Why the build: the interop copy lacks the generated FunctionRpc_pb2*.py
# files (the worker's repo gitignores them and generates them at build time),
# so they are generated here with grpcio-tools from fnhost's own
# proto/protos, the same wire contract, into a copy of the package. The
# interop folder itself is never written to.
#
# Idempotent: when the venv holds exactly these pins and the build matches
# the current protos, it prints so and exits at once. Where
# ../shared/interop is absent, it says so and exits 0: the suites skip.
#
# Environment: PYTHON (default python3.11, else python3) picks the interpreter.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
interop="$(cd "$root/.." && pwd)/shared/interop"
worker="$interop/python-worker-4.34.0"
venv="$here/.venv"
py="$venv/bin/python"
build="$here/.build/python"

if [[ ! -d "$worker" ]]; then
  echo "interop: $worker is absent; the interop suites will skip"
  exit 0
fi

if [[ -n "${PYTHON:-}" ]]; then
  python="$PYTHON"
elif command -v python3.11 >/dev/null 2>&1; then
  python=python3.11
else
  python=python3
fi

pkgs=(
  "azure-functions==1.22.0b4"
  "grpcio~=1.59.0"
  "grpcio-tools~=1.59.0"
  "protobuf~=4.25.3"
  "python-dateutil~=2.9.0"
  "azurefunctions-extensions-base"
  # HTTP streaming (the worker's HttpUri) for tests/tests/e2e/http_stream.rs
  "azurefunctions-extensions-http-fastapi==1.0.1"
)
protos="$root/proto/protos"
stamp="$here/.build/.fnhost-setup"
want="${pkgs[*]} $(cd "$protos" && find . -name '*.proto' | sort | xargs sha256sum | sha256sum | cut -c1-16)"

check() {
  PYTHONPATH="$build" "$py" - <<'PY'
import azure_functions_worker.dispatcher  # noqa: F401  (grpc and the generated protos)
import azure.functions  # noqa: F401
import azurefunctions.extensions.http.fastapi  # noqa: F401
PY
}

# The v4 Node programming model (@azure/functions 4.x) for the v4 app tests.
node_v4="$here/node-v4"
if [[ ! -f "$node_v4/node_modules/@azure/functions/package.json" ]] ||
  [[ "$node_v4/package-lock.json" -nt "$node_v4/node_modules/.package-lock.json" ]]; then
  echo "interop: installing @azure/functions 4.x for the v4 Node app (npm ci)"
  (cd "$node_v4" && npm ci --no-audit --no-fund --loglevel=error)
fi

if [[ -x "$py" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]] && check 2>/dev/null; then
  echo "interop: $venv and $build are ready; nothing to do"
  exit 0
fi

if [[ ! -x "$py" ]]; then
  echo "interop: creating venv $venv with $("$python" --version 2>&1)"
  "$python" -m venv "$venv"
fi

echo "interop: pip install ${pkgs[*]}"
"$py" -m pip install --disable-pip-version-check "${pkgs[@]}"

echo "interop: copying the worker to $build and generating its protocol code"
rm -rf "$build"
mkdir -p "$build"
cp "$worker/worker.py" "$build/"
cp -r "$worker/azure_functions_worker" "$build/"
chmod -R u+w "$build"
# The worker imports its generated modules as azure_functions_worker.protos.*:
# compile from a staging tree with that layout and imports rewritten to it.
stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
pkg="azure_functions_worker/protos"
mkdir -p "$stage/$pkg"
cp -r "$protos"/. "$stage/$pkg/"
find "$stage/$pkg" -name '*.proto' -exec sed -i \
  -e "s#import \"identity/#import \"$pkg/identity/#" \
  -e "s#import \"shared/#import \"$pkg/shared/#" {} +
(cd "$stage" && find "$pkg" -name '*.proto' -print0 | xargs -0 \
  "$py" -m grpc_tools.protoc -I . --python_out="$build" --grpc_python_out="$build")

echo "interop: checking that the worker imports"
check
echo "$want" >"$stamp"
echo "interop: ready: $py $build/worker.py"
