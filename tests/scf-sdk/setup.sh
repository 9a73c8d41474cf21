#!/usr/bin/env bash
# Prepares the official Tencent Cloud SCF Python SDK for the e2e test
# tests/tests/e2e/scf.rs: tests/scf-sdk/.venv with the pinned packages from
# requirements.txt (see ../pinned-venv.sh).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
exec "$here/../pinned-venv.sh" scf-sdk "$here" \
    'from tencentcloud.scf.v20180416 import scf_client, models'
