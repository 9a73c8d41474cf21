#!/usr/bin/env bash
# Prepares schemathesis for the e2e test tests/tests/e2e/openapi.rs, which
# runs it against a live host with the host's own OpenAPI document:
# tests/schemathesis/.venv with the pinned packages from requirements.txt
# (see ../pinned-venv.sh).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
exec "$here/../pinned-venv.sh" schemathesis "$here" 'import schemathesis'
