"""Test function of the local-cloud test app behind function URLs: answers with the HTTP event it was given, its
version and its MODEL, or with the response its request's query asks for."""

import json
import os


def handler(event, context):
    query = event.get("queryStringParameters") or {}
    if query.get("answer") == "raw":
        return json.loads(event["body"])  # whatever the request's body says the function returns
    if query.get("answer") == "fail":
        raise RuntimeError("asked to fail")
    return {
        "statusCode": 201,
        "headers": {"content-type": "application/json", "x-model": os.environ.get("MODEL", "")},
        "cookies": ["session=1"],
        "body": json.dumps({"event": event, "version": context.function_version, "model": os.environ.get("MODEL")}),
    }
