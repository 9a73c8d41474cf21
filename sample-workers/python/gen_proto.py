"""Generates ``fnhost_worker/_proto`` from the project's ``proto/protos``.

    python gen_proto.py [OUT_DIR]

writes the protobuf modules (``*_pb2.py`` and their ``.pyi`` stubs) and the
gRPC service module into OUT_DIR (default: ``fnhost_worker/_proto``, which is
checked in). ``tests/test_proto.py`` regenerates into a temporary directory
and compares, so a change to the ``.proto`` files or to the pinned
``grpcio-tools`` fails the tests until this is run again.

protoc writes imports as the ``.proto`` files import each other, by path
from the include root (``from shared import NullableTypes_pb2``), which only
works with the output directory on ``sys.path``, where the top-level names
``shared`` and ``FunctionRpc_pb2`` could clash with user code. Each import of
a generated module is rewritten here to a package-relative one, so the code
works as the subpackage ``fnhost_worker._proto``; and stub lines that
declare a Python keyword (enum values ``in``, ``None``) become comments.

Needs ``grpcio-tools`` (``requirements-dev.txt``); not shipped in the package.
"""

from __future__ import annotations

import keyword
import os
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
PROTOS = os.path.normpath(os.path.join(HERE, "..", "..", "proto", "protos"))
DEFAULT_OUT = os.path.join(HERE, "fnhost_worker", "_proto")

#: The message files, and the one file with a service.
PROTO_FILES = ("FunctionRpc.proto", "shared/NullableTypes.proto", "identity/ClaimsIdentityRpc.proto")
SERVICE_FILES = ("FunctionRpc.proto",)

PACKAGE_INIT = '''"""Protobuf and gRPC modules generated from ``proto/protos`` by
``gen_proto.py``: do not edit. ``pb`` is ``FunctionRpc_pb2`` (the messages),
``pb_grpc`` is ``FunctionRpc_pb2_grpc`` (the ``FunctionRpc`` service)."""

from . import FunctionRpc_pb2 as pb
from . import FunctionRpc_pb2_grpc as pb_grpc

__all__ = ["pb", "pb_grpc"]
'''

SUBPACKAGE_INIT = '"""Generated from ``proto/protos/{name}`` by ``gen_proto.py``: do not edit."""\n'

_FROM_IMPORT = re.compile(r"^from ([\w.]+) import (\w+)( as \w+)?$")
_PLAIN_IMPORT = re.compile(r"^import (\w+) as (\w+)$")
_DECLARATION = re.compile(r"^(\s*)(\w+): ")


def module_name(proto: str, suffix: str = "_pb2") -> str:
    """``shared/NullableTypes.proto`` -> ``shared.NullableTypes_pb2``."""
    return proto[: -len(".proto")].replace("/", ".") + suffix


def relative_imports(text: str, depth: int, ours: set[str]) -> str:
    """Rewrites imports of the modules in ``ours`` (dotted names from the
    include root) in a file ``depth`` packages below the root to relative
    imports; every other import is kept."""
    dots = "." * (depth + 1)
    out = []
    for line in text.splitlines(keepends=True):
        body = line.rstrip("\n")
        m = _FROM_IMPORT.match(body)
        if m and f"{m.group(1)}.{m.group(2)}" in ours:
            line = f"from {dots}{m.group(1)} import {m.group(2)}{m.group(3) or ''}\n"
        else:
            m = _PLAIN_IMPORT.match(body)
            if m and m.group(1) in ours:
                line = f"from {dots} import {m.group(1)} as {m.group(2)}\n"
        out.append(line)
    return "".join(out)


def keyword_attributes_commented(text: str) -> str:
    """protoc's ``--pyi_out`` declares enum values named with a Python
    keyword (``BindingInfo.Direction.in``, ``RpcLog.Level.None``) as
    attributes, which is a syntax error in a stub; each such line becomes a
    comment (the values stay reachable as ``Direction.Value("in")``)."""
    out = []
    for line in text.splitlines(keepends=True):
        m = _DECLARATION.match(line)
        if m and keyword.iskeyword(m.group(2)):
            line = f"{m.group(1)}# {line.lstrip()}"
        out.append(line)
    return "".join(out)


def protoc(*args: str) -> None:
    from grpc_tools import protoc as grpc_protoc

    include = os.path.join(os.path.dirname(grpc_protoc.__file__), "_proto")
    argv = ["protoc", f"-I{PROTOS}", f"-I{include}", *args]
    if grpc_protoc.main(argv) != 0:
        raise SystemExit(f"gen_proto.py: protoc failed: {' '.join(argv)}")


def generate(out: str) -> None:
    """Writes the generated package into ``out`` (replacing what is there)."""
    ours = {module_name(p) for p in PROTO_FILES}
    with tempfile.TemporaryDirectory() as tmp:
        protoc(f"--python_out={tmp}", f"--pyi_out={tmp}", *PROTO_FILES)
        protoc(f"--grpc_python_out={tmp}", *SERVICE_FILES)
        for root, _dirs, files in os.walk(tmp):
            depth = 0 if root == tmp else os.path.relpath(root, tmp).count(os.sep) + 1
            for name in files:
                path = os.path.join(root, name)
                with open(path, encoding="utf-8") as f:
                    text = relative_imports(f.read(), depth, ours)
                if name.endswith(".pyi"):
                    text = keyword_attributes_commented(text)
                with open(path, "w", encoding="utf-8") as f:
                    f.write(text)
            if root == tmp:
                init = PACKAGE_INIT
            else:
                init = SUBPACKAGE_INIT.format(name=os.path.relpath(root, tmp).replace(os.sep, "/"))
            with open(os.path.join(root, "__init__.py"), "w", encoding="utf-8") as f:
                f.write(init)
        if os.path.isdir(out):
            shutil.rmtree(out)
        shutil.copytree(tmp, out)


def main(argv: list[str]) -> int:
    out = os.path.abspath(argv[0]) if argv else DEFAULT_OUT
    generate(out)
    print(f"gen_proto.py: wrote {out} from {PROTOS}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
