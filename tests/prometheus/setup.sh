#!/usr/bin/env bash
# Prepares the Prometheus reference client's text-format parser for the
# e2e test tests/tests/e2e/metrics.rs: tests/prometheus/.venv with the
# pinned package from requirements.txt (see ../pinned-venv.sh).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
exec "$here/../pinned-venv.sh" prometheus "$here" \
    'from prometheus_client.parser import text_string_to_metric_families'
