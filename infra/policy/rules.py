"""mlvault's own policy rules, checked on the synthesized CloudFormation templates.

Unlike cdk-nag findings these cannot be acknowledged: they read nothing but the cloud assembly (the templates,
and for Lambda's size limit the asset directories they refer to), and any violation fails `cdk synth` (app.py
exits 1). Each rule has a stable id; tests build broken stacks and assert it fires.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import sys
import zipfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infra.policy.spec import (
    PROTECTED_OBJECT_ACTIONS,
    ROLE_METADATA_KEY,
    BucketRole,
)
from infra.settings import RETENTION_FLOOR_DAYS, StageSettings
from mlvault.wiring import Tag

BUCKET = "AWS::S3::Bucket"
BUCKET_POLICY = "AWS::S3::BucketPolicy"
FUNCTION = "AWS::Lambda::Function"
LAYER_VERSION = "AWS::Lambda::LayerVersion"
CODE_SIGNING_CONFIG = "AWS::Lambda::CodeSigningConfig"
SIGNING_PROFILE = "AWS::Signer::SigningProfile"
EVENT_INVOKE_CONFIG = "AWS::Lambda::EventInvokeConfig"
IDENTITY_POLICIES = (
    "AWS::IAM::Policy",
    "AWS::IAM::ManagedPolicy",
    "AWS::IAM::Role",
    "AWS::IAM::User",
    "AWS::IAM::Group",
)
SSE_ALGORITHMS = ("aws:kms", "aws:kms:dsse", "AES256")
# Lambda's hard limit on a function's code plus all its layers, unzipped: "250 MB", which Lambda enforces as
# "must be smaller than 262144000 bytes" (250 MiB).
LAMBDA_UNZIPPED_LIMIT_BYTES = 250 * 1024 * 1024


@dataclass(frozen=True)
class Violation:
    rule: str
    stack: str
    resource: str
    message: str

    def __str__(self) -> str:
        return f"[{self.rule}] {self.stack}/{self.resource}: {self.message}"


@dataclass(frozen=True)
class RuleContext:
    break_glass_role_name: str
    code_signing_policy: str
    retention_floor_days: int = RETENTION_FLOOR_DAYS

    @classmethod
    def of(cls, settings: StageSettings) -> RuleContext:
        return cls(settings.break_glass_role_name, settings.code_signing_policy)


# --- template helpers -------------------------------------------------------------------------------------


def _resources(template: Mapping[str, Any], type_: str) -> Iterator[tuple[str, Mapping[str, Any]]]:
    for logical_id, resource in template.get("Resources", {}).items():
        if resource.get("Type") == type_:
            yield logical_id, resource


def _props(resource: Mapping[str, Any]) -> Mapping[str, Any]:
    return resource.get("Properties") or {}


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _refers_to(value: Any, logical_id: str) -> bool:
    """True when a CloudFormation value is Ref / GetAtt of the logical id."""
    if isinstance(value, Mapping):
        if value.get("Ref") == logical_id:
            return True
        att = value.get("Fn::GetAtt")
        if isinstance(att, list) and att and att[0] == logical_id:
            return True
    return False


def _mentions(value: Any, logical_id: str) -> bool:
    """True when a value refers to the logical id anywhere, including through a cross-stack export name."""
    return logical_id in json.dumps(value)


def _action_matches(pattern: str, action: str) -> bool:
    return fnmatch.fnmatchcase(action.lower(), str(pattern).lower())


def _statements(document: Any) -> list[Mapping[str, Any]]:
    if not isinstance(document, Mapping):
        return []
    return [s for s in _as_list(document.get("Statement", [])) if isinstance(s, Mapping)]


def _is_everyone(principal: Any) -> bool:
    return principal == "*" or (isinstance(principal, Mapping) and principal.get("AWS") == "*")


def _bucket_policies(template: Mapping[str, Any], bucket_id: str) -> list[Mapping[str, Any]]:
    statements: list[Mapping[str, Any]] = []
    for _, policy in _resources(template, BUCKET_POLICY):
        props = _props(policy)
        if _refers_to(props.get("Bucket"), bucket_id):
            statements.extend(_statements(props.get("PolicyDocument")))
    return statements


# --- rules ------------------------------------------------------------------------------------------------


def _check_buckets(stack: str, template: Mapping[str, Any], ctx: RuleContext) -> Iterator[Violation]:
    for bucket_id, bucket in _resources(template, BUCKET):
        role = (bucket.get("Metadata") or {}).get(ROLE_METADATA_KEY)
        props = _props(bucket)
        if role not in BucketRole.ALL:
            yield Violation(
                "MLV-BUCKET-ROLE",
                stack,
                bucket_id,
                f"bucket has no '{ROLE_METADATA_KEY}' metadata in {BucketRole.ALL}; got {role!r}",
            )
        rules = ((props.get("BucketEncryption") or {}).get("ServerSideEncryptionConfiguration")) or []
        algorithms = [((r or {}).get("ServerSideEncryptionByDefault") or {}).get("SSEAlgorithm") for r in rules]
        if not algorithms or any(a not in SSE_ALGORITHMS for a in algorithms):
            yield Violation(
                "MLV-BUCKET-ENCRYPTED",
                stack,
                bucket_id,
                f"bucket must set default encryption ({', '.join(SSE_ALGORITHMS)}); got {algorithms}",
            )
        statements = _bucket_policies(template, bucket_id)
        if not any(_denies_insecure_transport(s) for s in statements):
            yield Violation(
                "MLV-BUCKET-TLS",
                stack,
                bucket_id,
                "bucket policy must deny every request with aws:SecureTransport false",
            )
        if role in BucketRole.LOCKED:
            yield from _check_lock(stack, bucket_id, props, ctx)
            yield from _check_locked_policy(stack, bucket_id, statements, ctx)
        if role == BucketRole.INGEST:
            yield from _check_ingest_lifecycle(stack, bucket_id, props)


def _denies_insecure_transport(statement: Mapping[str, Any]) -> bool:
    condition = (statement.get("Condition") or {}).get("Bool") or {}
    return (
        statement.get("Effect") == "Deny"
        and _is_everyone(statement.get("Principal"))
        and any(
            _action_matches(a, "s3:GetObject") and _action_matches(a, "s3:PutObject")
            for a in _as_list(statement.get("Action"))
        )
        and str(condition.get("aws:SecureTransport")).lower() == "false"
    )


def _check_lock(stack: str, bucket_id: str, props: Mapping[str, Any], ctx: RuleContext) -> Iterator[Violation]:
    lock = props.get("ObjectLockConfiguration") or {}
    retention = ((lock.get("Rule") or {}).get("DefaultRetention")) or {}
    days = retention.get("Days")
    if days is None and retention.get("Years") is not None:
        days = int(retention["Years"]) * 365
    if not (props.get("ObjectLockEnabled") is True and lock.get("ObjectLockEnabled") == "Enabled"):
        yield Violation("MLV-OBJECT-LOCK", stack, bucket_id, "locked bucket must enable Object Lock")
    elif retention.get("Mode") != "COMPLIANCE":
        yield Violation(
            "MLV-OBJECT-LOCK",
            stack,
            bucket_id,
            f"default retention must be COMPLIANCE, got {retention.get('Mode')!r}",
        )
    elif not isinstance(days, int) or days < ctx.retention_floor_days:
        yield Violation(
            "MLV-OBJECT-LOCK",
            stack,
            bucket_id,
            f"default retention must be >= {ctx.retention_floor_days} days, got {days!r}",
        )
    if ((props.get("VersioningConfiguration") or {}).get("Status")) != "Enabled":
        yield Violation("MLV-OBJECT-LOCK", stack, bucket_id, "locked bucket must be versioned")


def _exempts_only_break_glass(statement: Mapping[str, Any], ctx: RuleContext) -> bool:
    condition = statement.get("Condition") or {}
    if set(condition) != {"ArnNotEquals"} or set(condition["ArnNotEquals"]) != {"aws:PrincipalArn"}:
        return False
    exempt = _as_list(condition["ArnNotEquals"]["aws:PrincipalArn"])
    pattern = rf':role/{re.escape(ctx.break_glass_role_name)}"[\]}}\s]*$'
    return len(exempt) == 1 and re.search(pattern, json.dumps(exempt[0])) is not None


def _check_locked_policy(
    stack: str, bucket_id: str, statements: list[Mapping[str, Any]], ctx: RuleContext
) -> Iterator[Violation]:
    for action in PROTECTED_OBJECT_ACTIONS:
        denied = any(
            s.get("Effect") == "Deny"
            and _is_everyone(s.get("Principal"))
            and any(_action_matches(p, action) for p in _as_list(s.get("Action")))
            and _exempts_only_break_glass(s, ctx)
            for s in statements
        )
        if not denied:
            yield Violation(
                "MLV-LOCKED-DENY",
                stack,
                bucket_id,
                f"bucket policy must deny {action} to every principal but the break-glass role "
                f"'{ctx.break_glass_role_name}'",
            )
    for s in statements:
        if s.get("Effect") == "Allow" and _allows_protected(s):
            yield Violation(
                "MLV-LOCKED-DENY",
                stack,
                bucket_id,
                f"bucket policy allows a protected action: {s.get('Action')}",
            )


def _check_ingest_lifecycle(stack: str, bucket_id: str, props: Mapping[str, Any]) -> Iterator[Violation]:
    rules = ((props.get("LifecycleConfiguration") or {}).get("Rules")) or []
    expiring = (
        "ExpirationInDays",
        "ExpirationDate",
        "NoncurrentVersionExpiration",
        "NoncurrentVersionExpirationInDays",
        "Transitions",
        "Transition",
    )
    for rule in rules:
        if not any(k in rule for k in expiring):
            continue
        tags = {t.get("Key") for t in rule.get("TagFilters") or []}
        if Tag.VERDICT not in tags:
            yield Violation(
                "MLV-INGEST-LIFECYCLE",
                stack,
                bucket_id,
                f"lifecycle rule {rule.get('Id')!r} could expire a version without a verdict: "
                f"filter it on the '{Tag.VERDICT}' tag",
            )


def _allows_protected(statement: Mapping[str, Any]) -> bool:
    actions = _as_list(statement.get("Action", [])) + _as_list(statement.get("NotAction", []))
    if "NotAction" in statement:
        return True  # an Allow with NotAction grants nearly everything, protected actions included
    return any(_action_matches(p, a) for p in actions for a in PROTECTED_OBJECT_ACTIONS)


def _identity_documents(resource: Mapping[str, Any]) -> Iterable[Any]:
    props = _props(resource)
    if "PolicyDocument" in props:
        yield props["PolicyDocument"]
    for inline in props.get("Policies") or []:
        yield (inline or {}).get("PolicyDocument")


def _check_identity_grants(stack: str, template: Mapping[str, Any], locked_ids: set[str]) -> Iterator[Violation]:
    for type_ in IDENTITY_POLICIES:
        for logical_id, resource in _resources(template, type_):
            for document in _identity_documents(resource):
                for s in _statements(document):
                    if s.get("Effect") != "Allow" or not _allows_protected(s):
                        continue
                    targets = _as_list(s.get("Resource", "*"))
                    hits = [
                        t
                        for t in targets
                        if t == "*"
                        or (
                            isinstance(t, str)
                            and t.startswith("arn:")
                            and ":s3:::" in t
                            and "*" in t.split(":::", 1)[1].split("/", 1)[0]
                        )
                        or any(_mentions(t, b) for b in locked_ids)
                    ]
                    if hits:
                        yield Violation(
                            "MLV-NO-DELETE-GRANT",
                            stack,
                            logical_id,
                            f"grants {s.get('Action') or s.get('NotAction')} on {hits}: only "
                            "break-glass may delete or unlock objects of locked buckets",
                        )


def _check_functions(stack: str, template: Mapping[str, Any], ctx: RuleContext) -> Iterator[Violation]:
    resources = template.get("Resources", {})
    invoke_configs = [_props(r) for _, r in _resources(template, EVENT_INVOKE_CONFIG)]
    for fn_id, fn in _resources(template, FUNCTION):
        props = _props(fn)
        yield from _check_code_signing(stack, fn_id, props.get("CodeSigningConfigArn"), resources, ctx)
        has_dlq = bool((props.get("DeadLetterConfig") or {}).get("TargetArn"))
        has_destination = any(
            _refers_to(c.get("FunctionName"), fn_id)
            and ((c.get("DestinationConfig") or {}).get("OnFailure") or {}).get("Destination")
            for c in invoke_configs
        )
        if not (has_dlq or has_destination):
            yield Violation(
                "MLV-LAMBDA-FAILURE-DESTINATION",
                stack,
                fn_id,
                "function needs a DeadLetterConfig or an on-failure destination",
            )
        log_format = (props.get("LoggingConfig") or {}).get("LogFormat")
        if log_format != "JSON":
            yield Violation(
                "MLV-LAMBDA-STRUCTURED-LOGS",
                stack,
                fn_id,
                f"function must log in JSON (LoggingConfig.LogFormat), got {log_format!r}",
            )


def _check_code_signing(
    stack: str, fn_id: str, arn: Any, resources: Mapping[str, Any], ctx: RuleContext
) -> Iterator[Violation]:
    config_id = next((lid for lid in resources if _refers_to(arn, lid)), None)
    config = resources.get(config_id) if config_id else None
    if not config or config.get("Type") != CODE_SIGNING_CONFIG:
        yield Violation(
            "MLV-LAMBDA-CODE-SIGNING",
            stack,
            fn_id,
            "function needs a CodeSigningConfigArn referring to a code signing config of its stack",
        )
        return
    props = _props(config)
    profiles = ((props.get("AllowedPublishers") or {}).get("SigningProfileVersionArns")) or []
    signer_backed = profiles and all(
        any(_refers_to(p, lid) and r.get("Type") == SIGNING_PROFILE for lid, r in resources.items()) for p in profiles
    )
    if not signer_backed:
        yield Violation(
            "MLV-LAMBDA-CODE-SIGNING",
            stack,
            fn_id,
            f"code signing config {config_id} must be backed by AWS Signer profiles of the stack",
        )
    policy = (props.get("CodeSigningPolicies") or {}).get("UntrustedArtifactOnDeployment")
    if policy != ctx.code_signing_policy:
        yield Violation(
            "MLV-LAMBDA-CODE-SIGNING",
            stack,
            fn_id,
            f"code signing policy must be the stage's {ctx.code_signing_policy!r}, got {policy!r}",
        )


# --- Lambda's unzipped size limit, measured on the assets of the cloud assembly ----------------------------


def assembly_assets(outdir: str | Path) -> dict[str, Path]:
    """Asset object key (as in Code.S3Key / Content.S3Key) -> its file or directory in the cloud assembly."""
    outdir = Path(outdir)
    manifest = json.loads((outdir / "manifest.json").read_text())
    assets: dict[str, Path] = {}
    for artifact in manifest.get("artifacts", {}).values():
        if artifact.get("type") != "cdk:asset-manifest":
            continue
        files = json.loads((outdir / artifact["properties"]["file"]).read_text()).get("files", {})
        for entry in files.values():
            for destination in entry.get("destinations", {}).values():
                assets[destination["objectKey"]] = outdir / entry["source"]["path"]
    return assets


def unzipped_bytes(asset: Path) -> int:
    """What an asset occupies once Lambda unzips it: a directory's files, a zip's members, or a plain file."""
    if asset.is_dir():
        return sum(os.stat(os.path.join(root, name)).st_size for root, _, names in os.walk(asset) for name in names)
    if zipfile.is_zipfile(asset):
        with zipfile.ZipFile(asset) as archive:
            return sum(member.file_size for member in archive.infolist())
    return asset.stat().st_size


def _asset_key(key: Any, assets: Mapping[str, Path]) -> bool:
    return isinstance(key, str) and key in assets


def _check_function_sizes(
    stack: str, template: Mapping[str, Any], assets: Mapping[str, Path], limit: int
) -> Iterator[Violation]:
    resources = template.get("Resources", {})
    mib = 1024 * 1024
    for fn_id, fn in _resources(template, FUNCTION):
        props = _props(fn)
        code = props.get("Code") or {}
        if "ImageUri" in code:
            continue  # container images have their own (10 GB) limit
        parts: list[tuple[str, int]] = []
        unknown: list[str] = []
        if isinstance(code.get("ZipFile"), str):
            parts.append(("inline code", len(code["ZipFile"].encode())))
        elif _asset_key(code.get("S3Key"), assets):
            parts.append(("code", unzipped_bytes(assets[code["S3Key"]])))
        else:
            unknown.append(f"code {code.get('S3Key')!r}")
        for layer in _as_list(props.get("Layers") or []):
            layer_id = next((lid for lid in resources if _refers_to(layer, lid)), None)
            key = _props(resources[layer_id]).get("Content", {}).get("S3Key") if layer_id else None
            if layer_id and resources[layer_id].get("Type") == LAYER_VERSION and _asset_key(key, assets):
                parts.append((layer_id, unzipped_bytes(assets[key])))
            else:
                unknown.append(f"layer {layer!r}")
        if unknown:
            yield Violation(
                "MLV-LAMBDA-SIZE",
                stack,
                fn_id,
                f"cannot check the unzipped size against Lambda's {limit / mib:.0f} MiB limit: "
                f"{', '.join(unknown)} not an asset of this cloud assembly",
            )
        total = sum(size for _, size in parts)
        if total >= limit:
            detail = ", ".join(f"{name} {size / mib:.1f} MiB" for name, size in parts)
            yield Violation(
                "MLV-LAMBDA-SIZE",
                stack,
                fn_id,
                f"code and layers unzip to {total} bytes ({detail}); Lambda needs less than {limit} "
                f"({limit / mib:.0f} MiB)",
            )


def check_function_sizes(
    templates: Mapping[str, Mapping[str, Any]],
    assets: Mapping[str, Path],
    limit: int = LAMBDA_UNZIPPED_LIMIT_BYTES,
) -> list[Violation]:
    """Every function whose code and layers, unzipped, reach Lambda's limit (or cannot be measured)."""
    return [v for stack, template in templates.items() for v in _check_function_sizes(stack, template, assets, limit)]


def check_templates(templates: Mapping[str, Mapping[str, Any]], ctx: RuleContext) -> list[Violation]:
    """Every violation of mlvault's own rules in a set of templates (stack name -> template)."""
    violations: list[Violation] = []
    locked_ids = {
        bucket_id
        for template in templates.values()
        for bucket_id, bucket in _resources(template, BUCKET)
        if (bucket.get("Metadata") or {}).get(ROLE_METADATA_KEY) in BucketRole.LOCKED
    }
    for stack, template in templates.items():
        violations.extend(_check_buckets(stack, template, ctx))
        violations.extend(_check_identity_grants(stack, template, locked_ids))
        violations.extend(_check_functions(stack, template, ctx))
    return violations


def assembly_templates(assembly: Any) -> dict[str, Mapping[str, Any]]:
    return {stack.stack_name: stack.template for stack in assembly.stacks}


def check_assembly(assembly: Any, ctx: RuleContext) -> list[Violation]:
    """Every violation of mlvault's own rules in a synthesized cloud assembly: templates and asset sizes."""
    templates = assembly_templates(assembly)
    return [*check_templates(templates, ctx), *check_function_sizes(templates, assembly_assets(assembly.directory))]


def enforce(assembly: Any, settings: StageSettings, out=sys.stderr) -> int:
    """Check a synthesized cloud assembly; print violations; 0 when clean, 1 otherwise."""
    violations = check_assembly(assembly, RuleContext.of(settings))
    for violation in violations:
        print(f"mlvault policy: {violation}", file=out)
    if violations:
        print(
            f"mlvault policy: {len(violations)} violation(s) of mlvault's own rules; these cannot be "
            "acknowledged. Synth failed.",
            file=out,
        )
        return 1
    return 0
