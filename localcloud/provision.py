"""Provisioning the synthesized templates onto the local cloud, the way CloudFormation would.

Stacks deploy in dependency order, resources in reference order; file assets are published to the bootstrap
assets bucket first (as `cdk deploy` does; the bucket is versioned, as the CDK bootstrap's is, so that AWS Signer
can sign an asset's exact version): first-party ones zipped, third-party layers (pyarrow's ~100 MB among them) as
a small zip of their manifest, since locally their packages come from the venv (services/lambda_code.py).
Custom resources (resources/cfn_custom.py) are created by invoking their provider function.
Every resource type has a handler (resources/, by service family) that knows exactly which properties it
applies; an unknown type or property raises UnsupportedError naming it. What is provisioned is recorded in a
`Deployment` (deployment.py, importable from here too).
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from localcloud.cdkout import StackArtifact, is_third_party_layer
from localcloud.deployment import Deployment, FunctionSpec
from localcloud.intrinsics import Scope, UnsupportedError, dependencies, resolve
from localcloud.resources import handler_for
from localcloud.resources.cfn_context import ProvisioningError, ResourceContext
from localcloud.services.lambda_code import third_party_layer_zip, top_level_packages

__all__ = ["NO_OP_TYPES", "SKIPPED_RULES", "Deployment", "FunctionSpec", "Provisioner"]

# Template sections and rules the local cloud knowingly skips, with the reason.
SKIPPED_RULES = {"CheckBootstrapVersion": "asserts the CDK bootstrap version; the local cloud has no bootstrap stack"}
NO_OP_TYPES = {"AWS::CDK::Metadata": "CDK usage metadata, nothing to run"}


class Provisioner:
    def __init__(
        self,
        clients: Callable[[str, str], Any],
        deployment: Deployment,
        invoke: Callable[[str, dict[str, Any]], Any] | None = None,
    ) -> None:
        self._clients = clients  # (service, region) -> boto3 client (deployer credentials)
        self.deployment = deployment
        self.invoke = invoke  # (function name, event) -> Invocation: runs a custom resource's provider
        self._after_stack: list[Callable[[], Any]] = []

    def client(self, service: str, region: str) -> Any:
        return self._clients(service, region)

    def after_stack(self, action: Callable[[], Any]) -> None:
        """Run the action once the current stack's resources all exist."""
        self._after_stack.append(action)

    def deploy(self, stacks: list[StackArtifact]) -> Deployment:
        for stack in stacks:
            self._publish_assets(stack)
            self._deploy_stack(stack)
        return self.deployment

    def _publish_assets(self, stack: StackArtifact) -> None:
        if not stack.assets:
            return
        s3 = self.client("s3", stack.region)
        bucket = self._assets_bucket(stack)
        existing = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
        if bucket not in existing:
            s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": stack.region})
            s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        for key, source in stack.assets.items():
            s3.put_object(Bucket=bucket, Key=key, Body=_asset_object(source))

    def _assets_bucket(self, stack: StackArtifact) -> str:
        qualifier = stack.execution_role_arn.split("role/cdk-", 1)[-1].split("-", 1)[0] or "hnb659fds"
        return f"cdk-{qualifier}-assets-{self.deployment.account}-{stack.region}"

    def _deploy_stack(self, stack: StackArtifact) -> None:
        template = stack.template
        for section in ("Conditions", "Transform", "Mappings"):
            if template.get(section):
                raise UnsupportedError(f"template section {section} in {stack.name}")
        for rule in template.get("Rules", {}):
            if rule not in SKIPPED_RULES:
                raise UnsupportedError(f"template rule {rule} in {stack.name}")
        scope = Scope(
            stack_name=stack.name, account=self.deployment.account, region=stack.region, exports=self.deployment.exports
        )
        for name, parameter in (template.get("Parameters") or {}).items():
            if "Default" not in parameter:
                raise UnsupportedError(f"parameter {name} without a default in {stack.name}")
            scope.parameters[name] = parameter["Default"]
        resources = template.get("Resources", {})
        provisioned = self.deployment.resources.setdefault(stack.name, {})
        for logical_id in _resource_order(resources):
            resource = resources[logical_id]
            type_ = resource["Type"]
            if type_ in NO_OP_TYPES:
                continue
            handler = handler_for(type_)
            if handler is None:
                raise UnsupportedError(f"resource type {type_} ({stack.name}/{logical_id})")
            props = resolve(resource.get("Properties", {}), scope)
            try:
                ref, attributes = handler(
                    ResourceContext(
                        stack=stack,
                        logical_id=logical_id,
                        type_=type_,
                        props=props,
                        resource=resource,
                        provisioner=self,
                    )
                )
            except ClientError as err:  # refused as AWS refuses it: CloudFormation fails the stack with the error
                raise ProvisioningError(f"{stack.name}/{logical_id} ({type_}): {err}") from err
            scope.refs[logical_id] = ref
            scope.attributes[logical_id] = attributes
            provisioned[logical_id] = (type_, str(ref))
        while self._after_stack:
            self._after_stack.pop(0)()
        for output in (template.get("Outputs") or {}).values():
            export = output.get("Export")
            if export:
                self.deployment.exports[resolve(export["Name"], scope)] = resolve(output["Value"], scope)


# Resource policies are applied as soon as their resource exists (CloudFormation creates whatever is ready
# in parallel; S3, for one, checks a log target's policy when another bucket starts logging to it).
_ATTACHMENT_TYPES = ("AWS::S3::BucketPolicy", "AWS::SQS::QueuePolicy", "AWS::SNS::TopicPolicy", "AWS::IAM::Policy")


def _resource_order(resources: dict[str, Any]) -> list[str]:
    """Creation order: a resource after everything it refers to or DependsOn; when several are ready,
    resource policies first, then template order."""
    position = {logical_id: i for i, logical_id in enumerate(resources)}
    needs: dict[str, set[str]] = {}
    for logical_id, resource in resources.items():
        deps = dependencies(resource.get("Properties", {}))
        depends_on = resource.get("DependsOn", [])
        deps |= set([depends_on] if isinstance(depends_on, str) else depends_on)
        needs[logical_id] = {d for d in deps if d in resources and d != logical_id}
    order: list[str] = []
    done: set[str] = set()
    while len(order) < len(resources):
        ready = [r for r in resources if r not in done and needs[r] <= done]
        if not ready:
            stuck = sorted(r for r in resources if r not in done)
            raise UnsupportedError(f"circular references between {', '.join(stuck)}")
        first = min(ready, key=lambda r: (resources[r]["Type"] not in _ATTACHMENT_TYPES, position[r]))
        order.append(first)
        done.add(first)
    return order


def _asset_object(source: Path) -> bytes:
    """What `cdk deploy` would upload for an asset: a file as is, a directory zipped, except a third-party layer,
    published as a zip of a manifest of what the zip would hold (the LayerVersion is still created from it, and
    signed like any other layer)."""
    if not source.is_dir():
        return source.read_bytes()
    if not is_third_party_layer(source):
        return _zip_dir(source)
    files = [p for p in source.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    manifest = {
        "mlvault-localcloud": "third-party layer, not zipped: locally its packages come from the venv",
        "asset": source.name,
        "distributions": sorted(d.name.removesuffix(".dist-info") for d in (source / "python").glob("*.dist-info")),
        "packages": top_level_packages(source / "python"),
        "files": len(files),
        "unzipped_bytes": sum(p.stat().st_size for p in files),
    }
    return third_party_layer_zip(manifest)


def _zip_dir(directory: Path) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(directory.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                archive.write(path, path.relative_to(directory).as_posix())
    return buffer.getvalue()
