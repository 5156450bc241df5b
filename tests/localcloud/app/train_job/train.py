"""Test training script of the local-cloud test app, written to SageMaker's script-mode contract: it records what
the job gave it (arguments, SM_* environment, channel files) in SM_MODEL_DIR, and fails or sleeps when asked to."""

import argparse
import json
import os
import sys
import time

parser = argparse.ArgumentParser()
parser.add_argument("--mode", default="ok")
parser.add_argument("--epochs", type=int, default=1)
parser.add_argument("--seconds", type=float, default=30)
args, unknown = parser.parse_known_args()

if args.mode == "fail":
    with open(os.path.join(os.environ["SM_OUTPUT_DIR"], "failure"), "w") as failure:
        failure.write("INPUT_DIGEST_MISMATCH: train/part-0.csv: expected sha256 00, got ff")
    sys.exit(1)
if args.mode == "crash":
    raise ValueError("the data has no label column")
if args.mode == "sleep":
    time.sleep(args.seconds)

channels = {
    name: sorted(
        os.path.relpath(os.path.join(folder, f), os.environ[f"SM_CHANNEL_{name.upper()}"])
        for folder, _, files in os.walk(os.environ[f"SM_CHANNEL_{name.upper()}"])
        for f in files
    )
    for name in json.loads(os.environ["SM_CHANNELS"])
}
record = {
    "argv": sys.argv[1:],
    "epochs": args.epochs,
    "channels": channels,
    "environment": {k: v for k, v in os.environ.items() if k.startswith("SM_") or k.startswith("AWS_")},
    "cwd": os.getcwd(),
}
with open(os.path.join(os.environ["SM_MODEL_DIR"], "model.json"), "w") as out:
    json.dump(record, out)
with open(os.path.join(os.environ["SM_OUTPUT_DATA_DIR"], "metrics.json"), "w") as out:
    json.dump({"accuracy": 0.5}, out)
print("trained")
