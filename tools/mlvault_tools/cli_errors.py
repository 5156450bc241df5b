"""Which errors the CLI reports as a one-line message (expected conditions) rather than a traceback (bugs)."""

from __future__ import annotations


def user_facing(err: BaseException) -> bool:
    """Expected conditions (bad input, missing setup) the user can act on; ValueError covers ContractError."""
    from localcloud.control import LocalCloudError
    from mlvault.trust.producers import TrustRegistryError
    from mlvault_tools.discovery import DiscoveryError

    return isinstance(
        err, LocalCloudError | DiscoveryError | TrustRegistryError | FileExistsError | FileNotFoundError | ValueError
    )
