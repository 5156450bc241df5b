"""Which errors the CLI reports as a one-line message (expected conditions) rather than a traceback (bugs)."""

from __future__ import annotations


def user_facing(err: BaseException) -> bool:
    """Expected conditions (bad input, missing setup) the user can act on; ValueError covers ContractError."""
    from mlvault.discovery import DiscoveryError
    from mlvault.localcloud.control import LocalCloudError
    from mlvault.trust import RegistryError

    return isinstance(
        err, LocalCloudError | DiscoveryError | RegistryError | FileExistsError | FileNotFoundError | ValueError
    )
