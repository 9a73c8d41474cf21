#!/usr/bin/env bash
# Prepares the Python worker SDK for use:
#   1. a virtual environment at sample-workers/python/.venv with the pinned
#      packages from requirements.txt,
#   2. a .pth file that puts this directory on the venv's sys.path, so
#      `import fnhost_worker` works from any working directory,
#   3. the gRPC / protobuf modules generated from the project's proto/protos
#      into fnhost_worker/_generated (gitignored).
# Idempotent: each step is skipped when its inputs are unchanged (hash stamps).
# Environment: PYTHON (default python3) picks the interpreter for the venv.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
protos="$repo/proto/protos"
venv="$here/.venv"
gen="$here/fnhost_worker/_generated"
python="${PYTHON:-python3}"

say() { echo "setup.sh: $*"; }
hash_of() { cat "$@" | sha256sum | cut -d' ' -f1; }

# Concurrent runs (e.g. two test suites) must not build the venv twice.
exec 9>"$here/.setup.lock"
flock 9

req_hash="$(hash_of "$here/requirements.txt")"
if [[ -x "$venv/bin/python" && -f "$venv/.fnhost-requirements" \
      && "$(cat "$venv/.fnhost-requirements")" == "$req_hash" ]]; then
    say "venv $venv is up to date"
else
    if [[ ! -x "$venv/bin/python" ]]; then
        say "creating venv $venv with $("$python" --version 2>&1)"
        "$python" -m venv "$venv"
    fi
    say "installing pinned packages from requirements.txt"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$here/requirements.txt"
    echo "$req_hash" > "$venv/.fnhost-requirements"
fi

site="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
if [[ "$(cat "$site/fnhost_worker_sdk.pth" 2>/dev/null)" != "$here" ]]; then
    say "adding $here to the venv's sys.path ($site/fnhost_worker_sdk.pth)"
    echo "$here" > "$site/fnhost_worker_sdk.pth"
fi

proto_files=(FunctionRpc.proto shared/NullableTypes.proto identity/ClaimsIdentityRpc.proto)
gen_hash="$(cd "$protos" && hash_of "${proto_files[@]}" "$here/requirements.txt")"
if [[ -f "$gen/.stamp" && "$(cat "$gen/.stamp")" == "$gen_hash" ]]; then
    say "generated code in $gen is up to date"
else
    say "generating Python gRPC code from $protos into $gen"
    tmp="$(mktemp -d "$here/fnhost_worker/.gen.XXXXXX")"
    trap 'rm -rf "$tmp"' EXIT
    # -I protos: the shared/ and identity/ files have no package and are
    # imported by path, so the generated modules import `shared.NullableTypes_pb2`
    # as a top-level package; fnhost_worker/_proto.py puts _generated on sys.path.
    (cd "$protos" && "$venv/bin/python" -m grpc_tools.protoc -I . \
        --python_out="$tmp" --pyi_out="$tmp" --grpc_python_out="$tmp" "${proto_files[@]}")
    echo "$gen_hash" > "$tmp/.stamp"
    rm -rf "$gen"
    mv "$tmp" "$gen"
    trap - EXIT
fi
say "ready: $venv/bin/python"
