"""Finding a stage's resources: the SSM parameters its stacks publish under /mlvault/<stage>/."""

from __future__ import annotations

from typing import Any


class DiscoveryError(RuntimeError):
    """The stage is not deployed where the CLI looked (or lacks a resource)."""


def stage_names(ssm: Any, stage: str) -> dict[str, str]:
    prefix = f"/mlvault/{stage}/"
    names: dict[str, str] = {}
    for page in ssm.get_paginator("get_parameters_by_path").paginate(Path=prefix, Recursive=True):
        for parameter in page["Parameters"]:
            names[parameter["Name"].removeprefix(prefix)] = parameter["Value"]
    if not names:
        raise DiscoveryError(
            f"no mlvault stage {stage!r} here (no SSM parameters under {prefix}); "
            "deploy it, or point --endpoint-url / MLVAULT_ENDPOINT_URL at the local cloud"
        )
    return names


def require(names: dict[str, str], name: str, stage: str) -> str:
    if name not in names:
        raise DiscoveryError(f"stage {stage!r} publishes no {name!r}")
    return names[name]
