"""Test function of the local-cloud test app: answers with the model its environment pins and its version."""

import os


def handler(event, context):
    return {"model": os.environ.get("MODEL"), "version": context.function_version, "arn": context.invoked_function_arn}
