"""Fault injection for handler tests: AWS calls that fail as a service briefly unavailable would, or a worker that
dies at a given call. Hooked into the boto3 session the functions' clients are made from (mlvault.composition
makes them lazily, at a function's first invocation), so the code under test runs unchanged. Install faults
before the first invocation: a client copies the session's hooks when it is made."""

from __future__ import annotations

import boto3
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError


class Killed(BaseException):
    """The worker died here (nothing after this point ran; no `except Exception` catches it)."""


class Faults:
    def __init__(self, monkeypatch) -> None:
        session = boto3.Session()
        monkeypatch.setattr(boto3, "DEFAULT_SESSION", session)
        self._events = session.events
        self.calls: dict[str, int] = {}

    def _hook(self, service: str, operation: str, times: int, act) -> None:
        name = f"{service}.{operation}"
        remaining = {"left": times}

        def hook(**kwargs):
            self.calls[name] = self.calls.get(name, 0) + 1
            if remaining["left"] > 0:
                remaining["left"] -= 1
                return act(kwargs)
            return None

        self._events.register(f"before-call.{name}", hook)

    def unavailable(self, service: str, operation: str, *, times: int = 1, code: str = "ServiceUnavailable") -> None:
        """The next `times` calls fail with a 503 (a transient error), then the service recovers."""
        self.fail(service, operation, times=times, code=code, status=503)

    def fail(self, service: str, operation: str, *, code: str, status: int, times: int = 1) -> None:
        """The next `times` calls fail with this error code and HTTP status."""

        def fail(kwargs):
            error = {"Error": {"Code": code, "Message": "injected"}, "ResponseMetadata": {"HTTPStatusCode": status}}
            raise ClientError(error, operation)

        self._hook(service, operation, times, fail)

    def refuse_event(self, *, times: int = 1) -> None:
        """PutEvents answers 200 with the entry refused (FailedEntryCount 1), as EventBridge does under load."""

        def refuse(kwargs):
            parsed = {
                "FailedEntryCount": 1,
                "Entries": [{"ErrorCode": "ThrottlingException", "ErrorMessage": "Rate exceeded"}],
                "ResponseMetadata": {"HTTPStatusCode": 200},
            }
            return AWSResponse("https://events.local", 200, {}, None), parsed

        self._hook("eventbridge", "PutEvents", times, refuse)

    def kill_at(self, service: str, operation: str) -> None:
        """The worker dies at the next such call, before it is made."""

        def kill(kwargs):
            raise Killed(f"killed at {service}.{operation}")

        self._hook(service, operation, 1, kill)
