"""Prints what wandb's own `wandb.Histogram(values).to_json()` gives for the values in a
JSON file (a list of numbers), to compare with trainlog's W&B histogram items.

Usage: python wandb_histogram.py VALUES_JSON
"""

import json
import sys

import numpy as np
import wandb


def main(path):
    with open(path) as f:
        values = np.array(json.load(f), dtype=np.float64)
    h = wandb.Histogram(values).to_json()
    json.dump({"_type": h["_type"], "values": list(map(int, h["values"])), "bins": list(map(float, h["bins"]))}, sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1])
