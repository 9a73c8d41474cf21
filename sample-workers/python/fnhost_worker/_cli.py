"""The ``fnhost-python-worker`` command (also ``python -m fnhost_worker``):

    fnhost-python-worker [SCRIPT] [launch arguments]

loads the function app's SCRIPT (default ``function_app.py`` in the working
directory, which the host sets to the app's) and serves its
:class:`~fnhost_worker.FunctionApp` with the launch arguments. The host
passes ``defaultWorkerPath`` of ``worker.config.json`` as SCRIPT, before the
launch arguments::

    {"description": {"language": "python",
                     "defaultExecutablePath": ".venv/bin/fnhost-python-worker",
                     "defaultWorkerPath": "function_app.py",
                     "argumentStyle": "both"}}

The app is the script's module-level FunctionApp named ``app``, else its only
FunctionApp. The script is imported as a module named after its file (so
its ``if __name__ == "__main__"`` block does not run), with its directory
first on ``sys.path`` as ``python SCRIPT`` would have it, so it can import
its own modules.

Exit codes: those of :meth:`FunctionApp.run`; 2 also when SCRIPT is missing
or defines no single app, 1 when importing it raises.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import traceback
from types import ModuleType
from typing import Optional, Sequence

from .app import FunctionApp

#: The script loaded when none is named.
DEFAULT_SCRIPT = "function_app.py"

USAGE = "usage: fnhost-python-worker [SCRIPT] [launch arguments]  (SCRIPT: default function_app.py)"


class AppError(Exception):
    """The script cannot be found or names no single FunctionApp."""


def main(argv: Optional[Sequence[str]] = None) -> None:
    """Runs the command with ``argv`` (default ``sys.argv[1:]``); exits the process."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in ("-h", "--help"):
        print(USAGE)
        sys.exit(0)
    script = args.pop(0) if args and not args[0].startswith("-") else DEFAULT_SCRIPT
    try:
        module = import_script(script)
        app = find_app(module, script)
    except AppError as e:
        print(f"fnhost python worker: {e}", file=sys.stderr)
        sys.exit(2)
    except Exception:  # noqa: BLE001 - the app's own error, reported whole
        print(f"fnhost python worker: importing {script} failed:", file=sys.stderr)
        traceback.print_exc()
        sys.exit(1)
    app.run(args)


def import_script(script: str) -> ModuleType:
    """Imports ``script`` as a module named after its file."""
    path = os.path.abspath(script)
    if not os.path.isfile(path):
        raise AppError(f"the app script {script} does not exist (working directory {os.getcwd()})")
    name = os.path.splitext(os.path.basename(path))[0]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise AppError(f"the app script {script} cannot be imported (expected a .py file)")
    sys.path.insert(0, os.path.dirname(path))
    module = importlib.util.module_from_spec(spec)
    # Registered first, so the script's own modules can import it by name.
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def find_app(module: ModuleType, script: str) -> FunctionApp:
    """The module's ``app`` if it is a FunctionApp, else its only FunctionApp."""
    app = getattr(module, "app", None)
    if isinstance(app, FunctionApp):
        return app
    found = {name: v for name, v in vars(module).items() if isinstance(v, FunctionApp)}
    if len(found) == 1:
        return next(iter(found.values()))
    if not found:
        raise AppError(f"{script} defines no FunctionApp (expected e.g. `app = FunctionApp()`)")
    names = ", ".join(sorted(found))
    raise AppError(f"{script} defines {len(found)} FunctionApps ({names}); name the one to serve `app`")
