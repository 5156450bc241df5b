"""Which errors the CLI reports as a one-line message (expected conditions) rather than a traceback (bugs)."""

from __future__ import annotations


def user_facing(err: BaseException) -> bool:
    from mlvault.localcloud.control import LocalCloudError

    return isinstance(err, LocalCloudError)
