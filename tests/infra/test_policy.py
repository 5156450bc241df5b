"""Policy as code: cdk-nag finds nothing unacknowledged, every acknowledgement sits on its resource, and each of
mlvault's own (unacknowledgeable) rules fires on a stack built to break it."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from aws_cdk import App, Duration, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3

from infra.constructs.storage import ingest_bucket, locked_bucket, mark_role, role_arn
from infra.policy.nag import acknowledge
from infra.policy.rules import (
    LAMBDA_UNZIPPED_LIMIT_BYTES,
    RuleContext,
    assembly_assets,
    check_assembly,
    check_function_sizes,
    check_templates,
    enforce,
)
from infra.policy.spec import BucketRole
from tests.conftest import cdk_context

CTX = RuleContext(break_glass_role_name="mlvault-break-glass", code_signing_policy="Warn")


def test_cdk_nag_packs_ran_with_zero_unacknowledged_findings(synthesized):
    reports = {r["pluginName"]: r for r in synthesized.validation_report["pluginReports"]}
    assert set(reports) == {"AwsSolutions", "NIST.800.53.R5"}
    for name, report in reports.items():
        assert report["violations"] == [], f"{name} findings: {report['violations']}"
        assert report["conclusion"] == "success"


def test_every_acknowledgement_sits_on_its_resource_with_a_reason(synthesized):
    stacks = set(synthesized.templates)
    acknowledged = [s for r in synthesized.validation_report["pluginReports"] for s in r["suppressedViolations"]]
    assert acknowledged, "expected the documented acknowledgements"
    for finding in acknowledged:
        where = finding["acknowledgedAt"]
        assert where not in stacks, f"{finding['ruleName']} acknowledged for a whole stack ({where})"
        assert all(c["constructPath"].startswith(where + "/") for c in finding["violatingConstructs"]), finding
        assert len(finding["reason"]) >= 20


def test_the_app_passes_our_own_rules(synthesized):
    assert check_templates(synthesized.templates, RuleContext.of(synthesized.settings)) == []
    assert check_function_sizes(synthesized.templates, assembly_assets(synthesized.outdir)) == []


# --- each own rule fires on a deliberately broken stack -----------------------------------------------------


def fired(stack: Stack, ctx: RuleContext = CTX) -> set[str]:
    return {v.rule for v in check_assembly(App.of(stack).synth(), ctx)}


@pytest.fixture
def stack() -> Stack:
    app = App(context=cdk_context())
    return Stack(app, "Broken")


@pytest.fixture
def parts(stack):
    key = kms.Key(stack, "Key", enable_key_rotation=True)
    logs = s3.Bucket(stack, "Logs", encryption=s3.BucketEncryption.S3_MANAGED, enforce_ssl=True)
    mark_role(logs, BucketRole.ACCESS_LOGS)
    return {
        "key": key,
        "logs": logs,
        "break_glass_arn": role_arn(stack, "mlvault-break-glass"),
        "deployer_arn": role_arn(stack, "deployer"),
    }


def test_a_well_built_locked_bucket_passes(stack, parts):
    locked_bucket(stack, "Lake", role=BucketRole.LAKE, retention_days=7, **parts)
    assert fired(stack) == set()


def test_rule_bucket_role_fires_on_a_bucket_without_a_role(stack):
    s3.Bucket(stack, "Anonymous", enforce_ssl=True, encryption=s3.BucketEncryption.S3_MANAGED)
    assert fired(stack) == {"MLV-BUCKET-ROLE"}


def test_rule_encryption_fires_on_an_unencrypted_bucket(stack):
    bucket = s3.Bucket(stack, "Plain", enforce_ssl=True)
    bucket.node.default_child.add_property_deletion_override("BucketEncryption")
    mark_role(bucket, BucketRole.ACCESS_LOGS)
    assert fired(stack) == {"MLV-BUCKET-ENCRYPTED"}


def test_rule_tls_fires_on_a_bucket_without_tls_only_policy(stack):
    bucket = s3.Bucket(stack, "NoTls", encryption=s3.BucketEncryption.S3_MANAGED)
    mark_role(bucket, BucketRole.ACCESS_LOGS)
    assert fired(stack) == {"MLV-BUCKET-TLS"}


def test_rule_object_lock_fires_on_governance_mode(stack, parts):
    lake = locked_bucket(stack, "Lake", role=BucketRole.LAKE, retention_days=30, **parts)
    lake.node.default_child.add_property_override("ObjectLockConfiguration.Rule.DefaultRetention.Mode", "GOVERNANCE")
    assert fired(stack) == {"MLV-OBJECT-LOCK"}


def test_rule_object_lock_fires_below_the_floor(stack, parts):
    locked_bucket(stack, "Model", role=BucketRole.MODEL, retention_days=3, **parts)
    assert fired(stack) == {"MLV-OBJECT-LOCK"}


def test_rule_object_lock_fires_on_a_lake_without_lock(stack, parts):
    lake = s3.Bucket(stack, "Lake", enforce_ssl=True, encryption=s3.BucketEncryption.KMS, encryption_key=parts["key"])
    mark_role(lake, BucketRole.LAKE)
    assert "MLV-OBJECT-LOCK" in fired(stack)


def test_rule_locked_deny_fires_when_another_role_is_exempt(stack, parts):
    parts["break_glass_arn"] = role_arn(stack, "someone-else")
    locked_bucket(stack, "Lake", role=BucketRole.LAKE, retention_days=7, **parts)
    assert fired(stack) == {"MLV-LOCKED-DENY"}


def test_rule_locked_deny_fires_on_an_allow_in_the_bucket_policy(stack, parts):
    lake = locked_bucket(stack, "Lake", role=BucketRole.LAKE, retention_days=7, **parts)
    lake.add_to_resource_policy(
        iam.PolicyStatement(
            actions=["s3:DeleteObjectVersion"],
            principals=[iam.AccountRootPrincipal()],
            resources=[lake.arn_for_objects("*")],
        )
    )
    assert fired(stack) == {"MLV-LOCKED-DENY"}


def test_rule_no_delete_grant_fires_on_a_role_allowed_to_delete_lake_objects(stack, parts):
    lake = locked_bucket(stack, "Lake", role=BucketRole.LAKE, retention_days=7, **parts)
    role = iam.Role(stack, "Cleaner", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))
    lake.grant_delete(role)
    assert fired(stack) == {"MLV-NO-DELETE-GRANT"}


def test_rule_no_delete_grant_fires_on_wildcard_retention_changes(stack):
    role = iam.Role(stack, "Admin", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))
    role.add_to_policy(iam.PolicyStatement(actions=["s3:PutObject*"], resources=["*"]))
    assert fired(stack) == {"MLV-NO-DELETE-GRANT"}


def test_rule_ingest_lifecycle_fires_on_expiry_without_a_verdict_tag(stack, parts):
    bucket = ingest_bucket(
        stack, "Ingest", bucket_name="ingest-test", key=parts["key"], logs=parts["logs"], verdict_expiration_days=7
    )
    bucket.add_lifecycle_rule(id="cleanup", expiration=Duration.days(1))
    assert fired(stack) == {"MLV-INGEST-LIFECYCLE"}


def _function(stack, **kwargs):
    return lambda_.Function(
        stack,
        "Fn",
        runtime=lambda_.Runtime.PYTHON_3_14,
        handler="index.handler",
        code=lambda_.Code.from_inline("def handler(e, c): return e"),
        **kwargs,
    )


def test_rule_lambda_code_signing_fires_without_a_signing_config(stack):
    _function(stack, logging_format=lambda_.LoggingFormat.JSON, dead_letter_queue_enabled=True)
    assert fired(stack) == {"MLV-LAMBDA-CODE-SIGNING"}


def test_rule_lambda_code_signing_fires_when_policy_differs_from_the_stage(stack):
    from aws_cdk import aws_signer as signer

    profile = signer.SigningProfile(stack, "Profile", platform=signer.Platform.AWS_LAMBDA_SHA384_ECDSA)
    csc = lambda_.CodeSigningConfig(
        stack,
        "Csc",
        signing_profiles=[profile],
        untrusted_artifact_on_deployment=lambda_.UntrustedArtifactOnDeployment.ENFORCE,
    )
    _function(stack, code_signing_config=csc, logging_format=lambda_.LoggingFormat.JSON, dead_letter_queue_enabled=True)
    assert fired(stack) == {"MLV-LAMBDA-CODE-SIGNING"}
    assert fired(stack, RuleContext("mlvault-break-glass", "Enforce")) == set()


def _signed(stack):
    from aws_cdk import aws_signer as signer

    profile = signer.SigningProfile(stack, "Profile", platform=signer.Platform.AWS_LAMBDA_SHA384_ECDSA)
    return lambda_.CodeSigningConfig(
        stack,
        "Csc",
        signing_profiles=[profile],
        untrusted_artifact_on_deployment=lambda_.UntrustedArtifactOnDeployment.WARN,
    )


def test_rule_lambda_failure_destination_fires_without_dlq_or_destination(stack):
    _function(stack, code_signing_config=_signed(stack), logging_format=lambda_.LoggingFormat.JSON)
    assert fired(stack) == {"MLV-LAMBDA-FAILURE-DESTINATION"}


def test_rule_lambda_failure_destination_accepts_an_on_failure_destination(stack):
    from aws_cdk import aws_lambda_destinations as destinations
    from aws_cdk import aws_sqs as sqs

    _function(
        stack,
        code_signing_config=_signed(stack),
        logging_format=lambda_.LoggingFormat.JSON,
        on_failure=destinations.SqsDestination(sqs.Queue(stack, "Failures")),
    )
    assert fired(stack) == set()


def test_rule_lambda_structured_logs_fires_on_text_logs(stack):
    _function(
        stack,
        code_signing_config=_signed(stack),
        logging_format=lambda_.LoggingFormat.TEXT,
        dead_letter_queue_enabled=True,
    )
    assert fired(stack) == {"MLV-LAMBDA-STRUCTURED-LOGS"}


def _asset_dir(tmp_path: Path, name: str, files: dict[str, str]) -> str:
    directory = tmp_path / name
    for relative, text in files.items():
        (directory / relative).parent.mkdir(parents=True, exist_ok=True)
        (directory / relative).write_text(text)
    return str(directory)


def test_rule_lambda_size_fires_when_code_and_layers_unzip_to_250_mib(stack, tmp_path):
    layer = lambda_.LayerVersion(
        stack, "Wheels", code=lambda_.Code.from_asset(_asset_dir(tmp_path, "layer", {"python/big.so": "x"}))
    )
    lambda_.Function(
        stack,
        "Fn",
        runtime=lambda_.Runtime.PYTHON_3_14,
        handler="handler.handler",
        code=lambda_.Code.from_asset(_asset_dir(tmp_path, "code", {"handler.py": "def handler(e, c): ..."})),
        layers=[layer],
        code_signing_config=_signed(stack),
        logging_format=lambda_.LoggingFormat.JSON,
        dead_letter_queue_enabled=True,
    )
    assembly = App.of(stack).synth()
    assert {v.rule for v in check_assembly(assembly, CTX)} == set()
    # The synthesized layer asset grows (a sparse file: no bytes written) until code + layer exceed the limit.
    template = assembly.get_stack_by_name(stack.stack_name).template
    (layer_id,) = [k for k, r in template["Resources"].items() if r["Type"] == "AWS::Lambda::LayerVersion"]
    key = template["Resources"][layer_id]["Properties"]["Content"]["S3Key"]
    big = assembly_assets(assembly.directory)[key] / "python" / "big.so"
    code_bytes = sum(f.stat().st_size for f in Path(assembly.directory).glob("asset.*/handler.py"))
    try:
        os.truncate(big, LAMBDA_UNZIPPED_LIMIT_BYTES - code_bytes - 1)
        assert {v.rule for v in check_assembly(assembly, CTX)} == set()  # one byte below the limit
        os.truncate(big, LAMBDA_UNZIPPED_LIMIT_BYTES - code_bytes)
        (violation,) = check_assembly(assembly, CTX)
    finally:
        big.unlink()
    assert violation.rule == "MLV-LAMBDA-SIZE"
    assert "Lambda needs less than 262144000 (250 MiB)" in violation.message
    assert layer_id in violation.message


def test_rule_lambda_size_fires_on_a_layer_it_cannot_measure(stack):
    _function(
        stack,
        layers=[
            lambda_.LayerVersion.from_layer_version_arn(
                stack, "Foreign", "arn:aws:lambda:eu-west-1:123456789012:layer:x:1"
            )
        ],
        code_signing_config=_signed(stack),
        logging_format=lambda_.LoggingFormat.JSON,
        dead_letter_queue_enabled=True,
    )
    assert fired(stack) == {"MLV-LAMBDA-SIZE"}


def test_own_rules_cannot_be_acknowledged_and_fail_synth(stack):
    bucket = s3.Bucket(stack, "Anonymous", enforce_ssl=True, encryption=s3.BucketEncryption.S3_MANAGED)
    acknowledge(bucket, "AwsSolutions-S1", "an acknowledgement must not silence our own rules")
    bucket.node.default_child.add_metadata("cdk_nag", {"rules_to_suppress": [{"id": "MLV-BUCKET-ROLE"}]})
    assembly = App.of(stack).synth()

    class Settings:
        break_glass_role_name = "mlvault-break-glass"
        code_signing_policy = "Warn"

    out = io.StringIO()
    assert enforce(assembly, Settings, out=out) == 1
    assert "[MLV-BUCKET-ROLE] Broken/Anonymous" in out.getvalue()
    assert "cannot be acknowledged" in out.getvalue()
