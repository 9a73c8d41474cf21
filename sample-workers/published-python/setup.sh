#!/usr/bin/env bash
# Installs the published Python language worker (`azure-functions-worker`
# 1.1.9 from PyPI) into sample-workers/published-python/.venv, for the app in
# sample-workers/published-python-app and the e2e tests in
# tests/tests/e2e/published_python.rs.
#
# Idempotent: when the venv already holds exactly these versions and the
# worker imports, it prints so and exits at once.
#
# Why the two steps: the 1.1.9 wheel pins grpcio ~1.33 (no wheels for Python
# past 3.9), so it is installed with --no-deps; its generated protobuf code
# needs protobuf < 4; it imports `azure.functions` at run time without
# declaring it. pip's resolver then complains that grpcio/grpcio-tools do not
# match the worker's pins and still exits 0: that complaint is expected.
#
# Environment: PYTHON (default python3) picks the interpreter for the venv.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/.venv"
py="$venv/bin/python"
python="${PYTHON:-python3}"

worker_pkg="azure-functions-worker==1.1.9"
# Exact versions known to work with the 1.1.9 worker on Python 3.9-3.13.
runtime_pkgs=(
  "grpcio==1.85.1"
  "protobuf==3.20.3"
  "azure-functions==1.26.0"
  "typing_extensions==4.16.0"
  "Werkzeug==3.1.9"
  "MarkupSafe==3.0.4"
)
stamp="$venv/.fnhost-setup"
want="$worker_pkg ${runtime_pkgs[*]}"

check() {
  "$py" - <<'EOF'
import azure_functions_worker.main  # noqa: F401  (imports grpc and the generated protos)
import azure.functions  # noqa: F401
import grpc, google.protobuf
assert google.protobuf.__version__.startswith("3."), google.protobuf.__version__
EOF
}

if [[ -x "$py" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]] && check 2>/dev/null; then
  echo "published-python: $venv is ready ($worker_pkg); nothing to do"
  exit 0
fi

if [[ ! -x "$py" ]]; then
  echo "published-python: creating venv $venv with $("$python" --version 2>&1)"
  "$python" -m venv "$venv"
fi

echo "published-python: pip install --no-deps $worker_pkg"
"$py" -m pip install --disable-pip-version-check --no-deps "$worker_pkg"

echo "published-python: pip install ${runtime_pkgs[*]}"
echo "published-python: (a resolver complaint about grpcio/grpcio-tools ~=1.33.1 is expected)"
"$py" -m pip install --disable-pip-version-check "${runtime_pkgs[@]}"

echo "published-python: checking that the worker imports"
check
echo "$want" >"$stamp"
echo "published-python: ready: $py -m azure_functions_worker"
"$py" -m pip freeze --disable-pip-version-check | sed 's/^/  /'
