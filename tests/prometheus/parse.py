"""Reads the Prometheus text format on stdin with the reference client's
parser and prints every sample as one JSON object per line:
{"name", "labels", "value", "type"}. A malformed exposition raises, and the
exit status is non-zero."""

import json
import sys

from prometheus_client.parser import text_string_to_metric_families

for family in text_string_to_metric_families(sys.stdin.read()):
    for sample in family.samples:
        print(
            json.dumps(
                {
                    "name": sample.name,
                    "labels": sample.labels,
                    "value": sample.value,
                    "type": family.type,
                }
            )
        )
