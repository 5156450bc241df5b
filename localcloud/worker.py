"""A local Lambda execution environment: one process, one function, one invocation at a time.

Started by runtime.py with the function's environment and PYTHONPATH (its code asset, then its first-party
layers). Standard library only, and run as a file, so nothing of mlvault is imported before the handler
imports the copy shipped in the function's assets. Protocol: one JSON request per line on stdin, one JSON
response per line on a private pipe (the handler's own stdout and stderr are its logs).
"""

import importlib
import json
import os
import sys
import time
import traceback


class Context:
    """The subset of the Lambda context object that handlers and Powertools read."""

    def __init__(self, request_id, deadline, invoked_function_arn=None):
        self.function_name = os.environ["AWS_LAMBDA_FUNCTION_NAME"]
        self.function_version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        self.invoked_function_arn = invoked_function_arn or os.environ["MLVAULT_LOCAL_FUNCTION_ARN"]
        self.memory_limit_in_mb = int(os.environ["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"])
        self.aws_request_id = request_id
        self.log_group_name = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME", "")
        self.log_stream_name = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME", "")
        self._deadline = deadline

    def get_remaining_time_in_millis(self):
        return max(0, int((self._deadline - time.time()) * 1000))


def main():
    protocol = os.fdopen(int(sys.argv[1]), "w", buffering=1)
    module_name, function_name = os.environ["_HANDLER"].rsplit(".", 1)
    handler = getattr(importlib.import_module(module_name), function_name)
    for line in sys.stdin:
        request = json.loads(line)
        context = Context(request["request_id"], request["deadline"], request.get("invoked_function_arn"))
        try:
            result = handler(request["event"], context)
            response = {"ok": True, "payload": result}
        except Exception as err:  # noqa: BLE001 - reported to the caller exactly as Lambda reports it
            traceback.print_exc()
            response = {
                "ok": False,
                "payload": {
                    "errorMessage": str(err),
                    "errorType": type(err).__name__,
                    "stackTrace": traceback.format_tb(err.__traceback__),
                },
            }
        sys.stdout.flush()
        sys.stderr.flush()
        protocol.write(json.dumps(response, default=str) + "\n")


if __name__ == "__main__":
    main()
