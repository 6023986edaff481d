"""Parses a scrape of the prometheus backend with the real prometheus_client parsers.

usage: read_prometheus.py FILE text|openmetrics

Prints JSON: {family: {"type": ..., "samples": [{"name", "labels", "value"}]}}, with
non-finite values as the strings "NaN", "Infinity", "-Infinity".
"""

import json
import math
import sys

from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as parse_openmetrics,
)
from prometheus_client.parser import text_string_to_metric_families as parse_text


def number(v):
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "Infinity" if v > 0 else "-Infinity"
    return v


def main():
    path, kind = sys.argv[1], sys.argv[2]
    text = open(path, encoding="utf-8").read()
    parse = parse_openmetrics if kind == "openmetrics" else parse_text
    out = {}
    for family in parse(text):
        out[family.name] = {
            "type": family.type,
            "samples": [
                {"name": s.name, "labels": dict(s.labels), "value": number(s.value)}
                for s in family.samples
            ],
        }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
