"""The installed package: the tests run against it (not the source tree),
it is current and typed, and its ``fnhost-python-worker`` command finds the
app to serve."""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

import fnhost_worker
from fnhost_worker import FunctionApp, _cli

SDK = Path(__file__).resolve().parent.parent
COMMAND = Path(sys.executable).parent / "fnhost-python-worker"


def test_the_tests_import_the_installed_current_package() -> None:
    installed = Path(fnhost_worker.__file__).resolve().parent
    assert installed.parent == Path(sysconfig.get_paths()["purelib"]).resolve(), installed
    assert importlib.metadata.version("fnhost-worker") == fnhost_worker.__version__
    assert (installed / "py.typed").is_file()
    for source in (SDK / "fnhost_worker").rglob("*.py*"):
        rel = source.relative_to(SDK / "fnhost_worker")
        if "__pycache__" in rel.parts:
            continue
        assert (installed / rel).read_bytes() == source.read_bytes(), f"{rel} is stale: run setup.sh"


def run_command(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(COMMAND), *args], cwd=cwd, capture_output=True, text=True, timeout=60)


def test_the_command_explains_itself_and_names_a_missing_script(tmp_path: Path) -> None:
    help = run_command("--help", cwd=tmp_path)
    assert help.returncode == 0 and "fnhost-python-worker [SCRIPT]" in help.stdout
    missing = run_command("--host", "127.0.0.1", "--port", "1", cwd=tmp_path)
    assert missing.returncode == 2
    assert "function_app.py does not exist" in missing.stderr and str(tmp_path) in missing.stderr


def test_the_command_reports_a_script_without_one_app_or_that_fails(tmp_path: Path) -> None:
    (tmp_path / "none.py").write_text("x = 1\n")
    (tmp_path / "two.py").write_text("from fnhost_worker import FunctionApp\na = FunctionApp()\nb = FunctionApp()\n")
    (tmp_path / "broken.py").write_text("raise RuntimeError('broken at import')\n")
    none = run_command("none.py", cwd=tmp_path)
    assert none.returncode == 2 and "none.py defines no FunctionApp" in none.stderr
    two = run_command("two.py", cwd=tmp_path)
    assert two.returncode == 2 and "2 FunctionApps (a, b)" in two.stderr
    broken = run_command("broken.py", cwd=tmp_path)
    assert broken.returncode == 1
    assert "importing broken.py failed" in broken.stderr and "RuntimeError: broken at import" in broken.stderr


def test_the_script_is_imported_by_name_beside_its_own_modules(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "helpers.py").write_text("GREETING = 'hi'\n")
    (tmp_path / "my_app.py").write_text(
        "from fnhost_worker import FunctionApp\n"
        "from helpers import GREETING\n"
        "main_ran = False\n"
        "service = FunctionApp()\n"
        "if __name__ == '__main__':\n"
        "    main_ran = True\n"
    )
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setattr(sys, "modules", dict(sys.modules))
    module = _cli.import_script(str(tmp_path / "my_app.py"))
    assert module.__name__ == "my_app" and sys.modules["my_app"] is module
    assert module.GREETING == "hi" and module.main_ran is False
    assert _cli.find_app(module, "my_app.py") is module.service  # the only one
    module.app = FunctionApp()
    assert _cli.find_app(module, "my_app.py") is module.app  # `app` wins


def test_python_dash_m_runs_the_same_command(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run(
        [sys.executable, "-m", "fnhost_worker", "--help"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0 and "fnhost-python-worker [SCRIPT]" in result.stdout


def test_a_test_context_is_cancelled_through_the_testing_helper_only() -> None:
    from fnhost_worker import Context
    from fnhost_worker.testing import cancel

    ctx = Context.for_test(function_name="nap", attempt=2)
    assert not hasattr(ctx, "cancel"), "handlers must not cancel their own invocation"
    assert not ctx.cancelled and ctx.cancel_reason is None and ctx.attempt == 2
    cancel(ctx, "timeout")
    cancel(ctx, "terminate")
    assert ctx.cancelled and ctx.cancel_event.is_set()
    assert ctx.cancel_reason == "timeout", "the first reason stands"
