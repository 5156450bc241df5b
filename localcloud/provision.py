"""Provisioning the synthesized templates onto the local cloud, the way CloudFormation would.

Stacks deploy in dependency order, resources in reference order; file assets are published to the bootstrap
assets bucket first (as `cdk deploy` does): first-party ones zipped, third-party layers (pyarrow's ~100 MB among
them) as a small manifest object, since locally their packages come from the venv and nothing reads the zip.
Every resource type has a handler that knows exactly which properties it applies; an unknown type or property
raises UnsupportedError naming it.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from localcloud.cdkout import StackArtifact, is_third_party_layer
from localcloud.intrinsics import Scope, UnsupportedError, dependencies, resolve

# Template sections and rules the local cloud knowingly skips, with the reason.
SKIPPED_RULES = {"CheckBootstrapVersion": "asserts the CDK bootstrap version; the local cloud has no bootstrap stack"}
NO_OP_TYPES = {"AWS::CDK::Metadata": "CDK usage metadata, nothing to run"}


@dataclass
class FunctionSpec:
    """What the Lambda runtime needs to run a provisioned function from its asset."""

    name: str
    arn: str
    handler: str
    code_dir: Path
    layer_dirs: list[Path]
    timeout: int
    memory: int
    role_arn: str
    log_group: str | None
    dead_letter_arn: str | None


@dataclass
class Deployment:
    """Everything provisioned: per stack, logical id -> (type, physical id)."""

    account: str
    resources: dict[str, dict[str, tuple[str, str]]] = field(default_factory=dict)
    exports: dict[str, Any] = field(default_factory=dict)
    functions: dict[str, FunctionSpec] = field(default_factory=dict)  # function name -> spec
    layers: dict[str, Path] = field(default_factory=dict)  # layer version ARN -> asset dir
    event_source_mappings: list[str] = field(default_factory=list)  # UUIDs
    principals: dict[str, str] = field(default_factory=dict)  # access key id -> principal ARN

    def physical_id(self, stack_suffix: str, type_: str, predicate: Callable[[str], bool] = lambda _: True) -> str:
        """The physical id of the one resource of a type in the stack whose name ends with the suffix."""
        found = [
            physical
            for stack, resources in self.resources.items()
            if stack.endswith(stack_suffix)
            for logical, (t, physical) in resources.items()
            if t == type_ and predicate(logical)
        ]
        if len(found) != 1:
            raise LookupError(f"expected one {type_} in *{stack_suffix}, found {found}")
        return found[0]


def _unique_name(stack: str, logical_id: str, max_len: int, *, lower: bool = False) -> str:
    """CloudFormation-style generated physical name: stack-logicalid-SUFFIX."""
    suffix = hashlib.sha256(f"{stack}/{logical_id}".encode()).hexdigest()[:12].upper()
    name = f"{stack}-{logical_id}"[: max_len - len(suffix) - 1] + f"-{suffix}"
    return name.lower() if lower else name


def _tags(props: dict[str, Any]) -> list[dict[str, str]]:
    return [{"Key": t["Key"], "Value": str(t["Value"])} for t in props.get("Tags", [])]


class Provisioner:
    def __init__(self, clients: Callable[[str, str], Any], deployment: Deployment) -> None:
        self._client = clients  # (service, region) -> boto3 client (deployer credentials)
        self.deployment = deployment
        self._after_stack: list[Callable[[], Any]] = []

    # --- stacks ---------------------------------------------------------------------------------------

    def deploy(self, stacks: list[StackArtifact]) -> Deployment:
        for stack in stacks:
            self._publish_assets(stack)
            self._deploy_stack(stack)
        return self.deployment

    def _publish_assets(self, stack: StackArtifact) -> None:
        if not stack.assets:
            return
        s3 = self._client("s3", stack.region)
        bucket = self._assets_bucket(stack)
        existing = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
        if bucket not in existing:
            s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": stack.region})
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
            handler = getattr(self, "_" + type_.replace("::", "_").lower(), None)
            if handler is None:
                raise UnsupportedError(f"resource type {type_} ({stack.name}/{logical_id})")
            props = resolve(resource.get("Properties", {}), scope)
            ctx = _Ctx(stack=stack, logical_id=logical_id, type_=type_, props=props, resource=resource)
            ref, attributes = handler(ctx)
            scope.refs[logical_id] = ref
            scope.attributes[logical_id] = attributes
            provisioned[logical_id] = (type_, str(ref))
        while self._after_stack:
            self._after_stack.pop(0)()
        for output in (template.get("Outputs") or {}).values():
            export = output.get("Export")
            if export:
                self.deployment.exports[resolve(export["Name"], scope)] = resolve(output["Value"], scope)

    # --- KMS ------------------------------------------------------------------------------------------

    def _aws_kms_key(self, c: _Ctx) -> tuple[Any, dict[str, Any]]:
        p = c.take("Description", "EnableKeyRotation", "KeyPolicy", "KeySpec", "KeyUsage", "Tags", "Enabled")
        kms = self._client("kms", c.region)
        args: dict[str, Any] = {
            "Description": p.get("Description", ""),
            "KeyUsage": p.get("KeyUsage", "ENCRYPT_DECRYPT"),
            "KeySpec": p.get("KeySpec", "SYMMETRIC_DEFAULT"),
            "Tags": [{"TagKey": t["Key"], "TagValue": t["Value"]} for t in _tags(p)],
        }
        if "KeyPolicy" in p:
            args["Policy"] = json.dumps(p["KeyPolicy"])
            args["BypassPolicyLockoutSafetyCheck"] = True
        meta = kms.create_key(**args)["KeyMetadata"]
        if p.get("EnableKeyRotation"):
            kms.enable_key_rotation(KeyId=meta["KeyId"])
        if p.get("Enabled") is False:
            kms.disable_key(KeyId=meta["KeyId"])
        return meta["KeyId"], {"Arn": meta["Arn"], "KeyId": meta["KeyId"]}

    # --- S3 -------------------------------------------------------------------------------------------

    def _aws_s3_bucket(self, c: _Ctx) -> tuple[Any, dict[str, Any]]:
        p = c.take(
            "BucketName",
            "VersioningConfiguration",
            "ObjectLockEnabled",
            "ObjectLockConfiguration",
            "BucketEncryption",
            "PublicAccessBlockConfiguration",
            "OwnershipControls",
            "LifecycleConfiguration",
            "LoggingConfiguration",
            "NotificationConfiguration",
            "Tags",
        )
        s3 = self._client("s3", c.region)
        name = p.get("BucketName") or _unique_name(c.stack.name, c.logical_id, 63, lower=True)
        s3.create_bucket(
            Bucket=name,
            CreateBucketConfiguration={"LocationConstraint": c.region},
            ObjectLockEnabledForBucket=bool(p.get("ObjectLockEnabled")),
        )
        if "VersioningConfiguration" in p:
            s3.put_bucket_versioning(
                Bucket=name, VersioningConfiguration={"Status": p["VersioningConfiguration"]["Status"]}
            )
        if "ObjectLockConfiguration" in p:
            s3.put_object_lock_configuration(Bucket=name, ObjectLockConfiguration=p["ObjectLockConfiguration"])
        if "BucketEncryption" in p:
            rules = [
                {
                    "ApplyServerSideEncryptionByDefault": r["ServerSideEncryptionByDefault"],
                    **({"BucketKeyEnabled": r["BucketKeyEnabled"]} if "BucketKeyEnabled" in r else {}),
                }
                for r in p["BucketEncryption"]["ServerSideEncryptionConfiguration"]
            ]
            s3.put_bucket_encryption(Bucket=name, ServerSideEncryptionConfiguration={"Rules": rules})
        if "PublicAccessBlockConfiguration" in p:
            s3.put_public_access_block(Bucket=name, PublicAccessBlockConfiguration=p["PublicAccessBlockConfiguration"])
        if "OwnershipControls" in p:
            s3.put_bucket_ownership_controls(Bucket=name, OwnershipControls=p["OwnershipControls"])
        if "LifecycleConfiguration" in p:
            s3.put_bucket_lifecycle_configuration(
                Bucket=name,
                LifecycleConfiguration={"Rules": [_lifecycle_rule(r, c) for r in p["LifecycleConfiguration"]["Rules"]]},
            )
        if "LoggingConfiguration" in p:
            # gaps.py (9): applied once the stack's other resources exist, the log target's policy included.
            logging = {
                "LoggingEnabled": {
                    "TargetBucket": p["LoggingConfiguration"]["DestinationBucketName"],
                    "TargetPrefix": p["LoggingConfiguration"].get("LogFilePrefix", ""),
                }
            }
            self._after_stack.append(lambda: s3.put_bucket_logging(Bucket=name, BucketLoggingStatus=logging))
        if "NotificationConfiguration" in p:
            s3.put_bucket_notification_configuration(
                Bucket=name, NotificationConfiguration=_notification(p["NotificationConfiguration"], c)
            )
        if p.get("Tags"):
            s3.put_bucket_tagging(Bucket=name, Tagging={"TagSet": _tags(p)})
        return name, {
            "Arn": f"arn:aws:s3:::{name}",
            "DomainName": f"{name}.s3.amazonaws.com",
            "RegionalDomainName": f"{name}.s3.{c.region}.amazonaws.com",
            "DualStackDomainName": f"{name}.s3.dualstack.{c.region}.amazonaws.com",
        }

    def _aws_s3_bucketpolicy(self, c: _Ctx) -> tuple[Any, dict[str, Any]]:
        p = c.take("Bucket", "PolicyDocument")
        self._client("s3", c.region).put_bucket_policy(Bucket=p["Bucket"], Policy=json.dumps(p["PolicyDocument"]))
        return f"{p['Bucket']}-policy", {}

    # --- SQS / SNS ------------------------------------------------------------------------------------

    _QUEUE_ATTRIBUTES = (
        "KmsMasterKeyId",
        "MessageRetentionPeriod",
        "VisibilityTimeout",
        "DelaySeconds",
        "MaximumMessageSize",
        "ReceiveMessageWaitTimeSeconds",
        "KmsDataKeyReusePeriodSeconds",
        "SqsManagedSseEnabled",
        "FifoQueue",
        "ContentBasedDeduplication",
    )

    def _aws_sqs_queue(self, c: _Ctx) -> tuple[Any, dict[str, Any]]:
        p = c.take("QueueName", "RedrivePolicy", "Tags", *self._QUEUE_ATTRIBUTES)
        sqs = self._client("sqs", c.region)
        name = p.get("QueueName") or _unique_name(c.stack.name, c.logical_id, 80)
        attributes = {
            k: str(p[k]).lower() if isinstance(p[k], bool) else str(p[k]) for k in self._QUEUE_ATTRIBUTES if k in p
        }
        if "RedrivePolicy" in p:
            attributes["RedrivePolicy"] = json.dumps(p["RedrivePolicy"])
        url = sqs.create_queue(QueueName=name, Attributes=attributes, tags={t["Key"]: t["Value"] for t in _tags(p)})[
            "QueueUrl"
        ]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        return url, {"Arn": arn, "QueueName": name, "QueueUrl": url}

    def _aws_sqs_queuepolicy(self, c: _Ctx) -> tuple[Any, dict[str, Any]]:
        p = c.take("PolicyDocument", "Queues")
        sqs = self._client("sqs", c.region)
        for url in p["Queues"]:
            sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": json.dumps(p["PolicyDocument"])})
        return f"{c.logical_id}-policy", {}

    def _aws_sns_topic(self, c: _Ctx) -> tuple[Any, dict[str, Any]]:
        p = c.take("TopicName", "KmsMasterKeyId", "DisplayName", "Tags")
        attributes = {k: p[k] for k in ("KmsMasterKeyId", "DisplayName") if k in p}
        name = p.get("TopicName") or _unique_name(c.stack.name, c.logical_id, 256)
        arn = self._client("sns", c.region).create_topic(Name=name, Attributes=attributes, Tags=_tags(p))["TopicArn"]
        return arn, {"TopicArn": arn, "TopicName": name}

    def _aws_sns_topicpolicy(self, c: _Ctx) -> tuple[Any, dict[str, Any]]:
        p = c.take("PolicyDocument", "Topics")
        for arn in p["Topics"]:
            self._client("sns", c.region).set_topic_attributes(
                TopicArn=arn, AttributeName="Policy", AttributeValue=json.dumps(p["PolicyDocument"])
            )
        return f"{c.logical_id}-policy", {}

    def _aws_sns_subscription(self, c: _Ctx) -> tuple[Any, dict[str, Any]]:
        p = c.take("TopicArn", "Protocol", "Endpoint", "RawMessageDelivery", "FilterPolicy")
        attributes = {}
        if "RawMessageDelivery" in p:
            attributes["RawMessageDelivery"] = str(p["RawMessageDelivery"]).lower()
        if "FilterPolicy" in p:
            attributes["FilterPolicy"] = json.dumps(p["FilterPolicy"])
        arn = self._client("sns", c.region).subscribe(
            TopicArn=p["TopicArn"],
            Protocol=p["Protocol"],
            Endpoint=p["Endpoint"],
            Attributes=attributes,
            ReturnSubscriptionArn=True,
        )["SubscriptionArn"]
        return arn, {}

    # --- SSM ------------------------------------------------------------------------------------------

    def _aws_ssm_parameter(self, c: _Ctx) -> tuple[Any, dict[str, Any]]:
        p = c.take("Name", "Type", "Value", "Description", "Tier", "AllowedPattern", "DataType", "Tags")
        name = p.get("Name") or "/" + _unique_name(c.stack.name, c.logical_id, 200)
        args = {"Name": name, "Type": p["Type"], "Value": str(p["Value"]), "Description": p.get("Description", "")}
        for key in ("Tier", "AllowedPattern", "DataType"):
            if key in p:
                args[key] = p[key]
        self._client("ssm", c.region).put_parameter(**args)
        return name, {"Type": p["Type"], "Value": str(p["Value"])}

    # --- DynamoDB -------------------------------------------------------------------------------------

    def _aws_dynamodb_table(self, c: _Ctx) -> tuple[Any, dict[str, Any]]:
        p = c.take(
            "TableName",
            "AttributeDefinitions",
            "KeySchema",
            "BillingMode",
            "ProvisionedThroughput",
            "GlobalSecondaryIndexes",
            "LocalSecondaryIndexes",
            "SSESpecification",
            "StreamSpecification",
            "DeletionProtectionEnabled",
            "PointInTimeRecoverySpecification",
            "TimeToLiveSpecification",
            "Tags",
        )
        db = self._client("dynamodb", c.region)
        name = p.get("TableName") or _unique_name(c.stack.name, c.logical_id, 255)
        args: dict[str, Any] = {
            "TableName": name,
            "AttributeDefinitions": p["AttributeDefinitions"],
            "KeySchema": p["KeySchema"],
            "BillingMode": p.get("BillingMode", "PROVISIONED"),
        }
        for key in (
            "ProvisionedThroughput",
            "GlobalSecondaryIndexes",
            "LocalSecondaryIndexes",
            "StreamSpecification",
            "DeletionProtectionEnabled",
        ):
            if key in p:
                args[key] = p[key]
        if "SSESpecification" in p:
            sse = p["SSESpecification"]
            args["SSESpecification"] = {
                "Enabled": sse.get("SSEEnabled", False),
                **({"SSEType": sse["SSEType"]} if "SSEType" in sse else {}),
                **({"KMSMasterKeyId": sse["KMSMasterKeyId"]} if "KMSMasterKeyId" in sse else {}),
            }
        if p.get("Tags"):
            args["Tags"] = _tags(p)
        table = db.create_table(**args)["TableDescription"]
        if p.get("PointInTimeRecoverySpecification", {}).get("PointInTimeRecoveryEnabled"):
            db.update_continuous_backups(
                TableName=name, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True}
            )
        if "TimeToLiveSpecification" in p:
            db.update_time_to_live(TableName=name, TimeToLiveSpecification=p["TimeToLiveSpecification"])
        return name, {"Arn": table["TableArn"], "StreamArn": table.get("LatestStreamArn", "")}

    # --- IAM / logs / signing -------------------------------------------------------------------------

    def _aws_iam_role(self, c: _Ctx) -> tuple[Any, dict[str, Any]]:
        p = c.take(
            "RoleName",
            "AssumeRolePolicyDocument",
            "Description",
            "Path",
            "MaxSessionDuration",
            "Policies",
            "ManagedPolicyArns",
            "Tags",
        )
        iam = self._client("iam", c.region)
        name = p.get("RoleName") or _unique_name(c.stack.name, c.logical_id, 64)
        args = {
            "RoleName": name,
            "AssumeRolePolicyDocument": json.dumps(p["AssumeRolePolicyDocument"]),
            "Description": p.get("Description", ""),
            "Path": p.get("Path", "/"),
            "Tags": _tags(p),
        }
        if "MaxSessionDuration" in p:
            args["MaxSessionDuration"] = int(p["MaxSessionDuration"])
        role = iam.create_role(**args)["Role"]
        for inline in p.get("Policies", []):
            iam.put_role_policy(
                RoleName=name, PolicyName=inline["PolicyName"], PolicyDocument=json.dumps(inline["PolicyDocument"])
            )
        for arn in p.get("ManagedPolicyArns", []):
            iam.attach_role_policy(RoleName=name, PolicyArn=arn)
        return name, {"Arn": role["Arn"], "RoleId": role["RoleId"]}

    def _aws_iam_policy(self, c: _Ctx) -> tuple[Any, dict[str, Any]]:
        p = c.take("PolicyName", "PolicyDocument", "Roles", "Users", "Groups")
        iam = self._client("iam", c.region)
        document = json.dumps(p["PolicyDocument"])
        for role in p.get("Roles", []):
            iam.put_role_policy(RoleName=role, PolicyName=p["PolicyName"], PolicyDocument=document)
        for user in p.get("Users", []):
            iam.put_user_policy(UserName=user, PolicyName=p["PolicyName"], PolicyDocument=document)
        for group in p.get("Groups", []):
            iam.put_group_policy(GroupName=group, PolicyName=p["PolicyName"], PolicyDocument=document)
        return _unique_name(c.stack.name, c.logical_id, 64), {}

    def _aws_logs_loggroup(self, c: _Ctx) -> tuple[Any, dict[str, Any]]:
        p = c.take("LogGroupName", "KmsKeyId", "RetentionInDays", "Tags")
        logs = self._client("logs", c.region)
        name = p.get("LogGroupName") or _unique_name(c.stack.name, c.logical_id, 512)
        args = {"logGroupName": name, "tags": {t["Key"]: t["Value"] for t in _tags(p)}}
        if "KmsKeyId" in p:
            args["kmsKeyId"] = p["KmsKeyId"]
        logs.create_log_group(**args)
        if "RetentionInDays" in p:
            logs.put_retention_policy(logGroupName=name, retentionInDays=int(p["RetentionInDays"]))
        return name, {"Arn": f"arn:aws:logs:{c.region}:{self.deployment.account}:log-group:{name}:*"}

    def _aws_signer_signingprofile(self, c: _Ctx) -> tuple[Any, dict[str, Any]]:
        p = c.take("PlatformId", "SignatureValidityPeriod", "ProfileName", "Tags")
        name = p.get("ProfileName") or _unique_name(c.stack.name, c.logical_id, 64).replace("-", "_")
        args: dict[str, Any] = {"profileName": name, "platformId": p["PlatformId"]}
        if "SignatureValidityPeriod" in p:
            period = p["SignatureValidityPeriod"]
            args["signatureValidityPeriod"] = {"value": int(period["Value"]), "type": period["Type"]}
        if p.get("Tags"):
            args["tags"] = {t["Key"]: t["Value"] for t in _tags(p)}
        out = self._client("signer", c.region).put_signing_profile(**args)
        return out["arn"], {
            "Arn": out["arn"],
            "ProfileName": name,
            "ProfileVersion": out["profileVersion"],
            "ProfileVersionArn": out["profileVersionArn"],
        }

    # --- Lambda ---------------------------------------------------------------------------------------

    def _aws_lambda_codesigningconfig(self, c: _Ctx) -> tuple[Any, dict[str, Any]]:
        # moto has no code signing configs: the local cloud records them. It cannot check Signer signatures,
        # so only the Warn policy (deploy unsigned code) can be honoured; Enforce fails loudly.
        p = c.take("AllowedPublishers", "CodeSigningPolicies", "Description", "Tags")
        policy = p.get("CodeSigningPolicies", {}).get("UntrustedArtifactOnDeployment", "Warn")
        if policy != "Warn":
            raise UnsupportedError(
                f"AWS::Lambda::CodeSigningConfig with UntrustedArtifactOnDeployment={policy} "
                f"({c.logical_id}): the local cloud cannot verify AWS Signer signatures"
            )
        csc_id = "csc-" + hashlib.sha256(f"{c.stack.name}/{c.logical_id}".encode()).hexdigest()[:17]
        arn = f"arn:aws:lambda:{c.region}:{self.deployment.account}:code-signing-config:{csc_id}"
        return arn, {"CodeSigningConfigArn": arn, "CodeSigningConfigId": csc_id}

    def _aws_lambda_layerversion(self, c: _Ctx) -> tuple[Any, dict[str, Any]]:
        p = c.take(
            "Content", "CompatibleRuntimes", "CompatibleArchitectures", "Description", "LayerName", "LicenseInfo"
        )
        name = p.get("LayerName") or _unique_name(c.stack.name, c.logical_id, 64)
        args = {
            "LayerName": name,
            "Content": {"S3Bucket": p["Content"]["S3Bucket"], "S3Key": p["Content"]["S3Key"]},
            "Description": p.get("Description", ""),
            "CompatibleRuntimes": p.get("CompatibleRuntimes", []),
        }
        arn = self._client("lambda", c.region).publish_layer_version(**args)["LayerVersionArn"]
        self.deployment.layers[arn] = c.asset(p["Content"]["S3Key"])
        return arn, {"LayerVersionArn": arn}

    def _aws_lambda_function(self, c: _Ctx) -> tuple[Any, dict[str, Any]]:
        p = c.take(
            "FunctionName",
            "Runtime",
            "Handler",
            "Code",
            "Role",
            "Description",
            "Timeout",
            "MemorySize",
            "EphemeralStorage",
            "Environment",
            "Layers",
            "DeadLetterConfig",
            "LoggingConfig",
            "Architectures",
            "CodeSigningConfigArn",
            "ReservedConcurrentExecutions",
            "TracingConfig",
            "Tags",
        )
        code = p["Code"]
        if "S3Key" not in code:
            raise UnsupportedError(f"AWS::Lambda::Function Code without an S3 asset ({c.logical_id}): {sorted(code)}")
        name = p.get("FunctionName") or _unique_name(c.stack.name, c.logical_id, 64)
        args: dict[str, Any] = {
            "FunctionName": name,
            "Runtime": p["Runtime"],
            "Role": p["Role"],
            "Handler": p["Handler"],
            "Code": {"S3Bucket": code["S3Bucket"], "S3Key": code["S3Key"]},
            "Description": p.get("Description", ""),
            "Timeout": int(p.get("Timeout", 3)),
            "MemorySize": int(p.get("MemorySize", 128)),
            "EphemeralStorage": {"Size": int(p.get("EphemeralStorage", {}).get("Size", 512))},
            "Environment": {"Variables": {k: str(v) for k, v in p.get("Environment", {}).get("Variables", {}).items()}},
            "Layers": p.get("Layers", []),
            "Architectures": p.get("Architectures", ["x86_64"]),
            "Tags": {t["Key"]: t["Value"] for t in _tags(p)},
        }
        for key in ("DeadLetterConfig", "LoggingConfig", "TracingConfig", "CodeSigningConfigArn"):
            if key in p:
                args[key] = p[key]
        client = self._client("lambda", c.region)
        arn = client.create_function(**args)["FunctionArn"]
        if "ReservedConcurrentExecutions" in p:
            client.put_function_concurrency(
                FunctionName=name, ReservedConcurrentExecutions=int(p["ReservedConcurrentExecutions"])
            )
        self.deployment.functions[name] = FunctionSpec(
            name=name,
            arn=arn,
            handler=p["Handler"],
            code_dir=c.asset(code["S3Key"]),
            layer_dirs=[self.deployment.layers[layer] for layer in p.get("Layers", [])],
            timeout=args["Timeout"],
            memory=args["MemorySize"],
            role_arn=p["Role"],
            log_group=p.get("LoggingConfig", {}).get("LogGroup"),
            dead_letter_arn=p.get("DeadLetterConfig", {}).get("TargetArn"),
        )
        return name, {"Arn": arn}

    def _aws_lambda_eventsourcemapping(self, c: _Ctx) -> tuple[Any, dict[str, Any]]:
        p = c.take(
            "EventSourceArn",
            "FunctionName",
            "BatchSize",
            "MaximumBatchingWindowInSeconds",
            "FunctionResponseTypes",
            "Enabled",
            "Tags",
        )
        args: dict[str, Any] = {
            "EventSourceArn": p["EventSourceArn"],
            "FunctionName": p["FunctionName"],
            "Enabled": p.get("Enabled", True),
        }
        for key in ("BatchSize", "MaximumBatchingWindowInSeconds"):
            if key in p:
                args[key] = int(p[key])
        if "FunctionResponseTypes" in p:
            args["FunctionResponseTypes"] = p["FunctionResponseTypes"]
        uuid = self._client("lambda", c.region).create_event_source_mapping(**args)["UUID"]
        self.deployment.event_source_mappings.append(uuid)
        return uuid, {"Id": uuid}

    def _aws_lambda_permission(self, c: _Ctx) -> tuple[Any, dict[str, Any]]:
        p = c.take("Action", "FunctionName", "Principal", "SourceArn", "SourceAccount")
        statement_id = _unique_name(c.stack.name, c.logical_id, 100)
        args = {
            "FunctionName": p["FunctionName"],
            "StatementId": statement_id,
            "Action": p["Action"],
            "Principal": p["Principal"],
        }
        for key in ("SourceArn", "SourceAccount"):
            if key in p:
                args[key] = p[key]
        self._client("lambda", c.region).add_permission(**args)
        return statement_id, {}

    # --- EventBridge / Step Functions / CloudWatch ----------------------------------------------------

    def _aws_events_rule(self, c: _Ctx) -> tuple[Any, dict[str, Any]]:
        p = c.take(
            "Name", "EventPattern", "ScheduleExpression", "State", "Description", "EventBusName", "Targets", "Tags"
        )
        events = self._client("events", c.region)
        name = p.get("Name") or _unique_name(c.stack.name, c.logical_id, 64)
        args: dict[str, Any] = {
            "Name": name,
            "State": p.get("State", "ENABLED"),
            "Description": p.get("Description", ""),
        }
        if "EventPattern" in p:
            args["EventPattern"] = json.dumps(p["EventPattern"])
        if "ScheduleExpression" in p:
            from localcloud.gaps import rate_seconds

            rate_seconds(p["ScheduleExpression"])  # fails loudly on what the local cloud cannot run
            args["ScheduleExpression"] = p["ScheduleExpression"]
        if "EventBusName" in p:
            args["EventBusName"] = p["EventBusName"]
        if p.get("Tags"):
            args["Tags"] = _tags(p)
        arn = events.put_rule(**args)["RuleArn"]
        targets = []
        for t in p.get("Targets", []):
            unknown = set(t) - {"Id", "Arn", "Input", "InputPath", "RoleArn", "DeadLetterConfig", "RetryPolicy"}
            if unknown:
                raise UnsupportedError(f"AWS::Events::Rule target properties {sorted(unknown)} ({c.logical_id})")
            targets.append(t)
        if targets:
            events.put_targets(Rule=name, EventBusName=p.get("EventBusName", "default"), Targets=targets)
        return name, {"Arn": arn}

    def _aws_stepfunctions_statemachine(self, c: _Ctx) -> tuple[Any, dict[str, Any]]:
        p = c.take(
            "StateMachineName",
            "DefinitionString",
            "Definition",
            "DefinitionSubstitutions",
            "RoleArn",
            "StateMachineType",
            "LoggingConfiguration",
            "TracingConfiguration",
            "Tags",
        )
        definition = p.get("DefinitionString") or json.dumps(p.get("Definition"))
        for key, value in p.get("DefinitionSubstitutions", {}).items():
            definition = definition.replace("${" + key + "}", str(value))
        name = p.get("StateMachineName") or _unique_name(c.stack.name, c.logical_id, 80)
        out = self._client("stepfunctions", c.region).create_state_machine(
            name=name,
            definition=definition,
            roleArn=p["RoleArn"],
            type=p.get("StateMachineType", "STANDARD"),
            tags=[{"key": t["Key"], "value": t["Value"]} for t in _tags(p)],
        )
        return out["stateMachineArn"], {"Arn": out["stateMachineArn"], "Name": name}

    def _aws_cloudwatch_dashboard(self, c: _Ctx) -> tuple[Any, dict[str, Any]]:
        p = c.take("DashboardName", "DashboardBody", "Tags")
        name = p.get("DashboardName") or _unique_name(c.stack.name, c.logical_id, 255)
        cloudwatch = self._client("cloudwatch", c.region)
        cloudwatch.put_dashboard(DashboardName=name, DashboardBody=p["DashboardBody"])
        # Tags: moto cannot tag dashboards (TagResource fails for their ARN). A dashboard's tags carry no access
        # decision, so they are accepted and not applied here, on purpose and only for this type.
        return name, {}

    def _aws_cloudwatch_alarm(self, c: _Ctx) -> tuple[Any, dict[str, Any]]:
        p = c.take(
            "AlarmName",
            "AlarmDescription",
            "MetricName",
            "Namespace",
            "Statistic",
            "ExtendedStatistic",
            "Period",
            "EvaluationPeriods",
            "DatapointsToAlarm",
            "Threshold",
            "ComparisonOperator",
            "TreatMissingData",
            "Dimensions",
            "Metrics",
            "AlarmActions",
            "OKActions",
            "ActionsEnabled",
            "InsufficientDataActions",
            "Unit",
            "Tags",
        )
        name = p.pop("AlarmName", None) or _unique_name(c.stack.name, c.logical_id, 255)
        args = {k: v for k, v in p.items() if k != "Tags"}
        if "Tags" in p:
            args["Tags"] = _tags(p)
        for key in ("Period", "EvaluationPeriods", "DatapointsToAlarm"):
            if key in args:
                args[key] = int(args[key])
        if "Threshold" in args:
            args["Threshold"] = float(args["Threshold"])
        self._client("cloudwatch", c.region).put_metric_alarm(AlarmName=name, **args)
        return name, {"Arn": f"arn:aws:cloudwatch:{c.region}:{self.deployment.account}:alarm:{name}"}


@dataclass
class _Ctx:
    stack: StackArtifact
    logical_id: str
    type_: str
    props: dict[str, Any]
    resource: dict[str, Any]

    @property
    def region(self) -> str:
        return self.stack.region

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


def _lifecycle_rule(rule: dict[str, Any], c: _Ctx) -> dict[str, Any]:
    supported = {
        "Id",
        "Status",
        "Prefix",
        "TagFilters",
        "ExpirationInDays",
        "NoncurrentVersionExpiration",
        "NoncurrentVersionExpirationInDays",
        "AbortIncompleteMultipartUpload",
        "ExpiredObjectDeleteMarker",
    }
    unknown = set(rule) - supported
    if unknown:
        raise UnsupportedError(f"AWS::S3::Bucket lifecycle rule properties {sorted(unknown)} ({c.logical_id})")
    out: dict[str, Any] = {"ID": rule.get("Id", ""), "Status": rule["Status"]}
    tags = [{"Key": t["Key"], "Value": t["Value"]} for t in rule.get("TagFilters", [])]
    prefix = rule.get("Prefix")
    if len(tags) > 1 or (tags and prefix):
        out["Filter"] = {"And": {**({"Prefix": prefix} if prefix else {}), "Tags": tags}}
    elif tags:
        out["Filter"] = {"Tag": tags[0]}
    else:
        out["Filter"] = {"Prefix": prefix or ""}
    expiration: dict[str, Any] = {}
    if "ExpirationInDays" in rule:
        expiration["Days"] = int(rule["ExpirationInDays"])
    if "ExpiredObjectDeleteMarker" in rule:
        expiration["ExpiredObjectDeleteMarker"] = bool(rule["ExpiredObjectDeleteMarker"])
    if expiration:
        out["Expiration"] = expiration
    noncurrent = rule.get("NoncurrentVersionExpiration") or (
        {"NoncurrentDays": rule["NoncurrentVersionExpirationInDays"]}
        if "NoncurrentVersionExpirationInDays" in rule
        else None
    )
    if noncurrent:
        out["NoncurrentVersionExpiration"] = {"NoncurrentDays": int(noncurrent["NoncurrentDays"])}
    if "AbortIncompleteMultipartUpload" in rule:
        out["AbortIncompleteMultipartUpload"] = {
            "DaysAfterInitiation": int(rule["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"])
        }
    return out


def _key_filter(filter_: dict[str, Any] | None) -> dict[str, Any]:
    if not filter_:
        return {}
    rules = filter_.get("S3Key", {}).get("Rules", [])
    return {"Filter": {"Key": {"FilterRules": [{"Name": r["Name"], "Value": r["Value"]} for r in rules]}}}


def _notification(config: dict[str, Any], c: _Ctx) -> dict[str, Any]:
    unknown = set(config) - {
        "QueueConfigurations",
        "LambdaConfigurations",
        "TopicConfigurations",
        "EventBridgeConfiguration",
    }
    if unknown:
        raise UnsupportedError(f"AWS::S3::Bucket NotificationConfiguration {sorted(unknown)} ({c.logical_id})")
    out: dict[str, Any] = {}
    if "QueueConfigurations" in config:
        out["QueueConfigurations"] = [
            {"QueueArn": q["Queue"], "Events": [q["Event"]], **_key_filter(q.get("Filter"))}
            for q in config["QueueConfigurations"]
        ]
    if "LambdaConfigurations" in config:
        out["LambdaFunctionConfigurations"] = [
            {"LambdaFunctionArn": f["Function"], "Events": [f["Event"]], **_key_filter(f.get("Filter"))}
            for f in config["LambdaConfigurations"]
        ]
    if "TopicConfigurations" in config:
        out["TopicConfigurations"] = [
            {"TopicArn": t["Topic"], "Events": [t["Event"]], **_key_filter(t.get("Filter"))}
            for t in config["TopicConfigurations"]
        ]
    if config.get("EventBridgeConfiguration", {}).get("EventBridgeEnabled"):
        out["EventBridgeConfiguration"] = {}
    return out


def _asset_object(source: Path) -> bytes:
    """What `cdk deploy` would upload for an asset: a file as is, a directory zipped, except a third-party layer,
    published as a manifest of what the zip would hold (the LayerVersion is still created from it)."""
    if not source.is_dir():
        return source.read_bytes()
    if not is_third_party_layer(source):
        return _zip_dir(source)
    files = [p for p in source.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    manifest = {
        "mlvault-localcloud": "third-party layer, not zipped: locally its packages come from the venv",
        "asset": source.name,
        "distributions": sorted(d.name.removesuffix(".dist-info") for d in (source / "python").glob("*.dist-info")),
        "files": len(files),
        "unzipped_bytes": sum(p.stat().st_size for p in files),
    }
    return json.dumps(manifest, indent=1).encode()


def _zip_dir(directory: Path) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(directory.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                archive.write(path, path.relative_to(directory).as_posix())
    return buffer.getvalue()
