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


class LayerGuard:
    """Imports as Lambda would resolve them: a top-level module found neither in the function's code or first-party
    layers (PYTHONPATH) nor in the interpreter's standard library (its stdlib folders, outside any site-packages;
    built-in and frozen modules), and not provided by the runtime or a third-party layer of the function
    (MLVAULT_LOCAL_PROVIDED_PACKAGES), is not there, even though the venv running the local cloud has it. A meta
    path finder ahead of the others: it answers for such names only, with ModuleNotFoundError."""

    def __init__(self, provided, search_path):
        import importlib.machinery
        import sysconfig

        paths = sysconfig.get_paths()  # before the guard is installed: it imports the _sysconfigdata module
        self._stdlib = tuple({os.path.realpath(paths["stdlib"]), os.path.realpath(paths["platstdlib"])})
        self._provided = set(provided)
        self._search_path = list(search_path)
        self._machinery = importlib.machinery

    def find_spec(self, name, path=None, target=None):
        if path is not None or "." in name:  # a submodule: its package was allowed
            return None
        if name in self._provided or name in sys.builtin_module_names:
            return None
        if self._machinery.FrozenImporter.find_spec(name) is not None:
            return None
        if self._machinery.PathFinder.find_spec(name, self._search_path) is not None:
            return None  # the function's own code or a first-party layer: normal import
        spec = self._machinery.PathFinder.find_spec(name)
        if spec is not None and self._in_stdlib(spec):
            return None
        raise ModuleNotFoundError(
            f"No module named {name!r}: not in the function's code or layers, nor in Lambda's runtime "
            "(the local cloud's venv has it; Lambda would not)",
            name=name,
        )

    def _in_stdlib(self, spec):
        places = [spec.origin] if spec.origin else list(spec.submodule_search_locations or [])
        for place in places:
            real = os.path.realpath(place)
            parts = real.split(os.sep)
            if "site-packages" in parts or "dist-packages" in parts:
                return False
            if not any(real.startswith(root + os.sep) for root in self._stdlib):
                return False
        return bool(places)


def main():
    protocol = os.fdopen(int(sys.argv[1]), "w", buffering=1)
    provided = os.environ.get("MLVAULT_LOCAL_PROVIDED_PACKAGES")
    if provided is not None:
        search = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
        sys.meta_path.insert(0, LayerGuard([p for p in provided.split(",") if p], search))
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
