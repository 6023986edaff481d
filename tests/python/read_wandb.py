"""Reads a W&B offline run file with wandb's own DataStore and prints JSON.

Usage: python read_wandb.py RUN_FILE

Output: {"error": str|null, "types": [record type, ...], "run": {...}, "config": {key: value},
         "history": [{"step": n, "items": {key: value}}], "summary": {key: value},
         "exit_code": int|null}
A non-finite float is given as {"float": "NaN"}, {"float": "Infinity"} or
{"float": "-Infinity"}, so it cannot be mistaken for a string "NaN" (which stays a string).
"""

import json
import math
import sys

import wandb
from google.protobuf.json_format import MessageToDict
from wandb.proto import wandb_internal_pb2 as pb
from wandb.sdk.internal import datastore


def clean(v):
    if isinstance(v, float) and not math.isfinite(v):
        return {"float": "NaN" if math.isnan(v) else ("Infinity" if v > 0 else "-Infinity")}
    if isinstance(v, dict):
        return {k: clean(x) for k, x in v.items()}
    if isinstance(v, list):
        return [clean(x) for x in v]
    return v


def items(update):
    return {i.key: clean(json.loads(i.value_json)) for i in update}


def main(path):
    wandb._assert_is_internal_process = True
    ds = datastore.DataStore()
    ds.open_for_scan(path)
    out = {"error": None, "types": [], "run": None, "config": {}, "history": [], "summary": {}, "exit_code": None}
    try:
        while True:
            data = ds.scan_data()
            if data is None:
                break
            record = pb.Record()
            record.ParseFromString(data)
            kind = record.WhichOneof("record_type")
            out["types"].append(kind)
            if kind == "run":
                out["run"] = MessageToDict(record.run, preserving_proto_field_name=True)
            elif kind == "config":
                out["config"].update(items(record.config.update))
            elif kind == "history":
                out["history"].append({"step": record.history.step.num, "items": items(record.history.item)})
            elif kind == "summary":
                out["summary"].update(items(record.summary.update))
            elif kind == "exit":
                out["exit_code"] = record.exit.exit_code
    except AssertionError as e:
        out["error"] = str(e) or "assertion failed"
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1])
