"""Test function of the local-cloud test app: records each event it receives, fails when asked to."""

import importlib
import json
import os
import uuid

import boto3

s3 = boto3.client("s3")


def handler(event, context):
    source = event.get("source", "direct") if isinstance(event, dict) else "direct"
    s3.put_object(Bucket=os.environ["RECORDS_BUCKET"], Key=f"{source}/{uuid.uuid4()}.json", Body=json.dumps(event))
    if isinstance(event, dict) and event.get("import"):  # what this function can import (gap 26)
        importlib.import_module(event["import"])
    if isinstance(event, dict) and event.get("fail"):
        raise RuntimeError("asked to fail")
    return {"echo": event, "function": context.function_name}
