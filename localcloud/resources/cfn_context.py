"""What a resource handler is given: the resource (its resolved properties, its stack) and the provisioner's
means (clients signed as the deployer, the deployment being filled, actions to run once the stack exists).

A handler takes a `ResourceContext` and returns (Ref value, attributes for Fn::GetAtt). It applies exactly the
properties it names in `take`: any other fails provisioning with UnsupportedError naming it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from localcloud.intrinsics import UnsupportedError

if TYPE_CHECKING:
    from localcloud.cdkout import StackArtifact
    from localcloud.deployment import Deployment
    from localcloud.provision import Provisioner


class ProvisioningError(RuntimeError):
    """A resource failed to be created as CloudFormation would fail it (a custom resource's FAILED response)."""


@dataclass
class ResourceContext:
    stack: StackArtifact
    logical_id: str
    type_: str
    props: dict[str, Any]
    resource: dict[str, Any]
    provisioner: Provisioner

    @property
    def region(self) -> str:
        return self.stack.region

    @property
    def deployment(self) -> Deployment:
        return self.provisioner.deployment

    @property
    def account(self) -> str:
        return self.provisioner.deployment.account

    def client(self, service: str) -> Any:
        """A boto3 client of the service in the stack's region, signed as the deployer."""
        return self.provisioner.client(service, self.region)

    def after_stack(self, action: Callable[[], Any]) -> None:
        """Run the action once the stack's other resources exist (in the order added)."""
        self.provisioner.after_stack(action)

    def unique_name(self, max_len: int, *, lower: bool = False) -> str:
        """The physical name CloudFormation generates when a template names none."""
        return unique_name(self.stack.name, self.logical_id, max_len, lower=lower)

    def take(self, *supported: str) -> dict[str, Any]:
        unknown = sorted(set(self.props) - set(supported))
        if unknown:
            raise UnsupportedError(
                f"{self.type_} propert{'y' if len(unknown) == 1 else 'ies'} {', '.join(unknown)} "
                f"({self.stack.name}/{self.logical_id}) not supported by the local cloud"
            )
        return dict(self.props)

    def asset(self, object_key: str) -> Path:
        if object_key not in self.stack.assets:
            raise UnsupportedError(f"asset {object_key} of {self.logical_id} is not in the cloud assembly")
        return self.stack.assets[object_key]


Handler = Callable[[ResourceContext], tuple[Any, dict[str, Any]]]


def unique_name(stack: str, logical_id: str, max_len: int, *, lower: bool = False) -> str:
    """CloudFormation-style generated physical name: stack-logicalid-SUFFIX."""
    suffix = hashlib.sha256(f"{stack}/{logical_id}".encode()).hexdigest()[:12].upper()
    name = f"{stack}-{logical_id}"[: max_len - len(suffix) - 1] + f"-{suffix}"
    return name.lower() if lower else name


def tags(props: dict[str, Any]) -> list[dict[str, str]]:
    """A resource's Tags as most APIs take them ([{"Key", "Value"}], values as strings)."""
    return [{"Key": t["Key"], "Value": str(t["Value"])} for t in props.get("Tags", [])]


def tag_map(props: dict[str, Any]) -> dict[str, str]:
    """A resource's Tags as a {key: value} map (SQS, Lambda, Logs, Signer)."""
    return {t["Key"]: t["Value"] for t in tags(props)}
