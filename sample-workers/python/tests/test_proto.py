"""The checked-in generated code (``fnhost_worker/_proto``): it is what
``gen_proto.py`` makes from ``proto/protos`` now, and it works as a
subpackage without touching ``sys.path``."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

SDK = Path(__file__).resolve().parent.parent
CHECKED_IN = SDK / "fnhost_worker" / "_proto"


def load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_proto", SDK / "gen_proto.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tree(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts
    }


def test_the_checked_in_code_is_what_gen_proto_makes_from_the_protos(tmp_path: Path) -> None:
    load_generator().generate(str(tmp_path / "_proto"))
    fresh, checked_in = tree(tmp_path / "_proto"), tree(CHECKED_IN)
    assert sorted(fresh) == sorted(checked_in), "run `.venv/bin/python gen_proto.py`"
    stale = [name for name in fresh if fresh[name] != checked_in[name]]
    assert stale == [], f"{stale} differ from proto/protos: run `.venv/bin/python gen_proto.py`"


def test_generated_imports_are_package_relative() -> None:
    gen = load_generator()
    ours = {"FunctionRpc_pb2", "shared.NullableTypes_pb2"}
    text = (
        "from google.protobuf import duration_pb2 as d\n"
        "from shared import NullableTypes_pb2 as shared_dot_NullableTypes__pb2\n"
        "import FunctionRpc_pb2 as FunctionRpc__pb2\n"
        "import grpc\n"
    )
    assert gen.relative_imports(text, 1, ours) == (
        "from google.protobuf import duration_pb2 as d\n"
        "from ..shared import NullableTypes_pb2 as shared_dot_NullableTypes__pb2\n"
        "from .. import FunctionRpc_pb2 as FunctionRpc__pb2\n"
        "import grpc\n"
    )
    stub = "class D:\n    in: _ClassVar[D]\n    out: _ClassVar[D]\nNone: L\n"
    assert gen.keyword_attributes_commented(stub) == (
        "class D:\n    # in: _ClassVar[D]\n    out: _ClassVar[D]\n# None: L\n"
    )
    for path in CHECKED_IN.rglob("*.py*"):
        for line in path.read_text().splitlines():
            assert not line.startswith(("from shared ", "from identity ", "import FunctionRpc")), (path, line)


def test_importing_the_package_adds_nothing_to_sys_path_or_top_level_modules() -> None:
    check = (
        "import sys\n"
        "before = list(sys.path)\n"
        "import fnhost_worker\n"
        "from fnhost_worker._proto import pb, pb_grpc\n"
        "assert sys.path == before, (before, sys.path)\n"
        "leaked = {'FunctionRpc_pb2', 'FunctionRpc_pb2_grpc', 'shared', 'identity'} & set(sys.modules)\n"
        "assert not leaked, leaked\n"
        "assert pb.__name__ == 'fnhost_worker._proto.FunctionRpc_pb2', pb.__name__\n"
        "assert pb_grpc.FunctionRpcStub is not None\n"
        "assert pb.BindingInfo.Direction.Value('in') == 0\n"
    )
    # From a neutral directory, so only the installed package can be found.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run(
        [sys.executable, "-c", check], cwd="/", env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
