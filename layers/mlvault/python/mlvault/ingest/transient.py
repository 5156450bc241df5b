"""Which failures are transient (retry: never a verdict) and which are not.

A transient failure is one a retry may cure: throttling, a service error (5xx), the network, a body cut short.
Anything else (invalid parameters, missing credentials, a bad configuration) fails the same way every time and
is not transient: an upload that causes one must be judged (a verdict), not retried until the DLQ.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from botocore.exceptions import (
    BotoCoreError,
    CapacityNotAvailableError,
    ClientError,
    ConnectionError,
    HTTPClientError,
    IncompleteReadError,
)

from mlvault.errors import TransientError

_TRANSIENT_CODES = {
    "Throttling",
    "ThrottlingException",
    "RequestLimitExceeded",
    "SlowDown",
    "ServiceUnavailable",
    "InternalError",
    "InternalFailure",
    "ProvisionedThroughputExceededException",
    "RequestTimeout",
    "KMSInternalException",
    "TooManyRequestsException",
    "LimitExceededException",
    "TransactionConflictException",
    "KeyUnavailableException",
    "DependencyTimeoutException",
    "RequestTimeoutException",
    "ServiceUnavailableException",
    "InternalServerError",
    "InternalServerException",
}
# the botocore errors a retry can cure: connection and read failures, timeouts, a body cut short, the client's
# retry quota. Every other BotoCoreError (ParamValidationError, NoCredentialsError, ...) is permanent.
_TRANSIENT_BOTOCORE = (ConnectionError, HTTPClientError, IncompleteReadError, CapacityNotAvailableError)


def is_transient(err: Exception) -> bool:
    """Throttling, service errors (5xx) and the network: a retry may succeed. Nothing else is."""
    if isinstance(err, BotoCoreError):
        return isinstance(err, _TRANSIENT_BOTOCORE)
    if isinstance(err, ClientError):
        code = err.response.get("Error", {}).get("Code", "")
        status = err.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return code in _TRANSIENT_CODES or status >= 500
    return False


@contextmanager
def transient_errors(ref: Any) -> Iterator[None]:
    """Transient errors become TransientError (retry), naming `ref` (key, version_id); anything else propagates
    unchanged."""
    try:
        yield
    except (ClientError, BotoCoreError) as err:
        if is_transient(err):
            raise TransientError(f"{ref.key}#{ref.version_id}: {err}") from err
        raise
