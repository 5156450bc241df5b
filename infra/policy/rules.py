"""mlvault's own policy rules, checked on the synthesized CloudFormation templates.

Unlike cdk-nag findings these cannot be acknowledged: they read nothing but the cloud assembly (the templates,
and for Lambda's size limit the asset directories they refer to), and any violation fails `cdk synth` (app.py
exits 1). Each rule has a stable id; tests build broken stacks and assert it fires.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from infra.policy.kms_rules import check_keys
from infra.policy.lambda_rules import (
    LAMBDA_UNZIPPED_LIMIT_BYTES,
    assembly_assets,
    check_function_sizes,
    check_functions,
    unzipped_bytes,
)
from infra.policy.spec import (
    PROTECTED_OBJECT_ACTIONS,
    ROLE_METADATA_KEY,
    BucketRole,
)
from infra.policy.template_refs import Violation
from infra.policy.template_refs import action_matches as _action_matches
from infra.policy.template_refs import as_list as _as_list
from infra.policy.template_refs import is_everyone as _is_everyone
from infra.policy.template_refs import mentions as _mentions
from infra.policy.template_refs import props as _props
from infra.policy.template_refs import refers_to as _refers_to
from infra.policy.template_refs import resources as _resources
from infra.policy.template_refs import statements as _statements
from infra.settings import RETENTION_FLOOR_DAYS, StageSettings
from mlvault.wiring import Tag

__all__ = [
    "LAMBDA_UNZIPPED_LIMIT_BYTES",
    "RuleContext",
    "Violation",
    "assembly_assets",
    "assembly_templates",
    "check_assembly",
    "check_function_sizes",
    "check_templates",
    "enforce",
    "unzipped_bytes",
]

BUCKET = "AWS::S3::Bucket"
BUCKET_POLICY = "AWS::S3::BucketPolicy"
IDENTITY_POLICIES = (
    "AWS::IAM::Policy",
    "AWS::IAM::ManagedPolicy",
    "AWS::IAM::Role",
    "AWS::IAM::User",
    "AWS::IAM::Group",
)
SSE_ALGORITHMS = ("aws:kms", "aws:kms:dsse", "AES256")


@dataclass(frozen=True)
class RuleContext:
    break_glass_role_name: str
    code_signing_policy: str
    cdk_qualifier: str = "hnb659fds"
    retention_floor_days: int = RETENTION_FLOOR_DAYS

    @classmethod
    def of(cls, settings: StageSettings) -> RuleContext:
        return cls(settings.break_glass_role_name, settings.code_signing_policy, settings.cdk_qualifier)


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
        violations.extend(
            check_keys(stack, template, break_glass_role=ctx.break_glass_role_name, cdk_qualifier=ctx.cdk_qualifier)
        )
    violations.extend(check_functions(templates, ctx.code_signing_policy))
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
