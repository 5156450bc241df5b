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
from aws_cdk import aws_signer as signer

from infra.constructs.code_signer import CodeSigner
from infra.constructs.signed_code import SignedCode, SigningProvider
from infra.constructs.storage import deployment_role_arn, guard_key, ingest_bucket, locked_bucket, mark_role, role_arn
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
from infra.policy.spec import CODE_SIGNING_EXCEPTION_METADATA_KEY, BucketRole
from infra.settings import load_settings
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


def guarded_key(stack: Stack, construct_id: str = "Key") -> kms.Key:
    key = kms.Key(stack, construct_id, enable_key_rotation=True)
    guard_key(key, role_arn(stack, "mlvault-break-glass"), deployment_role_arn(stack, "hnb659fds"))
    return key


@pytest.fixture
def parts(stack):
    key = guarded_key(stack)
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


# --- code signing: a signer in its own stack, functions whose code it signs -----------------------------------


@pytest.fixture
def provider(stack) -> SigningProvider:
    """The stage's signing provider, built as the signing stack builds it, in a stack of its own."""
    signing = Stack(App.of(stack), "Signing")
    profile = signer.SigningProfile(signing, "Profile", platform=signer.Platform.AWS_LAMBDA_SHA384_ECDSA)
    code_signer = CodeSigner(
        signing,
        "Signer",
        settings=load_settings(cdk_context()),
        data_key=guarded_key(signing),
        profile=profile,
        signed_bucket="signed-code",
        pinned_keys=[],
    )
    return SigningProvider(function=code_signer.function, profile=profile, bucket_name="signed-code")


@pytest.fixture
def code_dir(tmp_path) -> str:
    return _asset_dir(tmp_path, "code", {"handler.py": "def handler(e, c): return e"})


def _signed(stack, provider, policy: str = "Warn", construct_id: str = "Csc"):
    return provider.code_signing_config(stack, construct_id, policy=policy, description="test")


def _code(stack, provider, code_dir, construct_id: str = "FnCode"):
    return SignedCode(stack, construct_id, provider=provider, asset={"path": code_dir}).code


def _function(stack, provider, code_dir, *, code=None, construct_id="Fn", **kwargs):
    kwargs.setdefault("logging_format", lambda_.LoggingFormat.JSON)
    if "on_failure" not in kwargs:
        kwargs.setdefault("dead_letter_queue_enabled", True)
    return lambda_.Function(
        stack,
        construct_id,
        runtime=lambda_.Runtime.PYTHON_3_14,
        handler="handler.handler",
        code=code or _code(stack, provider, code_dir, f"{construct_id}Code"),
        **kwargs,
    )


def test_a_function_with_signed_code_and_the_stages_config_passes(stack, provider, code_dir):
    _function(stack, provider, code_dir, code_signing_config=_signed(stack, provider))
    assert fired(stack) == set()


def test_rule_lambda_code_signing_fires_without_a_signing_config(stack, provider, code_dir):
    _function(stack, provider, code_dir)
    assert fired(stack) == {"MLV-LAMBDA-CODE-SIGNING"}


def test_rule_lambda_code_signing_fires_when_policy_differs_from_the_stage(stack, provider, code_dir):
    _function(stack, provider, code_dir, code_signing_config=_signed(stack, provider, "Enforce"))
    assert fired(stack) == {"MLV-LAMBDA-CODE-SIGNING"}
    assert fired(stack, RuleContext("mlvault-break-glass", "Enforce")) == set()


@pytest.mark.parametrize("unsigned", ["asset", "inline", "bucket"])
def test_rule_lambda_code_signing_fires_on_unsigned_code(stack, provider, code_dir, unsigned):
    """Code that no signed-code resource produced: the asset as cdk deploy publishes it, inline code, or an object
    named by hand in the signed-code bucket (a signature alone proves nothing about which code it covers)."""
    code = {
        "asset": lambda: lambda_.Code.from_asset(code_dir),
        "inline": lambda: lambda_.Code.from_inline("def handler(e, c): return e"),
        "bucket": lambda: lambda_.Code.from_bucket(
            s3.Bucket.from_bucket_name(stack, "Signed", "signed-code"), "signed/x.zip", "v1"
        ),
    }[unsigned]()
    _function(stack, provider, code_dir, code=code, code_signing_config=_signed(stack, provider))
    assert fired(stack) - {"MLV-LAMBDA-SIZE"} == {"MLV-LAMBDA-CODE-SIGNING"}  # an object by hand: not measurable


def test_rule_lambda_code_signing_fires_on_code_signed_with_a_profile_the_config_does_not_trust(
    stack, provider, code_dir
):
    other = signer.SigningProfile(stack, "Other", platform=signer.Platform.AWS_LAMBDA_SHA384_ECDSA)
    foreign = SigningProvider(function=provider.function, profile=other, bucket_name=provider.bucket_name)
    _function(
        stack, provider, code_dir, code=_code(stack, foreign, code_dir), code_signing_config=_signed(stack, provider)
    )
    assert fired(stack) == {"MLV-LAMBDA-CODE-SIGNING"}


def test_rule_lambda_code_signing_fires_on_a_signed_code_resource_another_function_provides(stack, provider, code_dir):
    config = _signed(stack, provider)
    impostor = _function(stack, provider, code_dir, construct_id="Impostor", code_signing_config=config)
    forged = SigningProvider(function=impostor, profile=provider.profile, bucket_name=provider.bucket_name)
    _function(stack, provider, code_dir, code=_code(stack, forged, code_dir), code_signing_config=config)
    assert fired(stack) == {"MLV-LAMBDA-CODE-SIGNING"}


def test_rule_lambda_code_signing_fires_on_an_unsigned_layer(stack, provider, code_dir):
    layer = lambda_.LayerVersion(stack, "Layer", code=lambda_.Code.from_asset(code_dir))
    _function(stack, provider, code_dir, layers=[layer], code_signing_config=_signed(stack, provider))
    violations = [v for v in check_assembly(App.of(stack).synth(), CTX) if v.rule == "MLV-LAMBDA-CODE-SIGNING"]
    assert {v.resource for v in violations} == {stack.get_logical_id(layer.node.default_child)}


def test_rule_lambda_code_signing_accepts_a_signed_layer(stack, provider, code_dir):
    layer = lambda_.LayerVersion(stack, "Layer", code=_code(stack, provider, code_dir, "LayerCode"))
    _function(stack, provider, code_dir, layers=[layer], code_signing_config=_signed(stack, provider))
    assert fired(stack) == set()


def test_rule_lambda_code_signing_allows_exactly_one_exception(stack, provider, code_dir):
    """A second function marked as the code signing exception is refused, the signer included: the mark is not a
    way to run unsigned code."""
    second = _function(stack, provider, code_dir, code=lambda_.Code.from_asset(code_dir))
    second.node.default_child.add_metadata(CODE_SIGNING_EXCEPTION_METADATA_KEY, "signer")
    violations = [v for v in check_assembly(App.of(stack).synth(), CTX) if v.rule == "MLV-LAMBDA-CODE-SIGNING"]
    assert {v.stack for v in violations} == {"Signing", "Broken"}
    assert any("2 functions are marked" in v.message for v in violations)


def test_rule_lambda_code_signing_fires_when_the_signer_has_company_or_layers(stack, provider, code_dir):
    signing = Stack.of(provider.function)
    _function(signing, provider, code_dir, construct_id="Neighbour", code_signing_config=_signed(signing, provider))
    provider.function.add_layers(lambda_.LayerVersion(signing, "Layer", code=lambda_.Code.from_asset(code_dir)))
    guarded_key(stack)  # a stack must not be empty
    messages = [v.message for v in check_assembly(App.of(stack).synth(), CTX) if v.rule == "MLV-LAMBDA-CODE-SIGNING"]
    assert any("alone in its stack" in m for m in messages)
    assert any("may have no layers" in m for m in messages)


def test_rule_lambda_failure_destination_fires_without_dlq_or_destination(stack, provider, code_dir):
    _function(stack, provider, code_dir, code_signing_config=_signed(stack, provider), dead_letter_queue_enabled=False)
    assert fired(stack) == {"MLV-LAMBDA-FAILURE-DESTINATION"}


def test_rule_lambda_failure_destination_accepts_an_on_failure_destination(stack, provider, code_dir):
    from aws_cdk import aws_lambda_destinations as destinations
    from aws_cdk import aws_sqs as sqs

    _function(
        stack,
        provider,
        code_dir,
        code_signing_config=_signed(stack, provider),
        on_failure=destinations.SqsDestination(sqs.Queue(stack, "Failures")),
    )
    assert fired(stack) == set()


def test_rule_lambda_structured_logs_fires_on_text_logs(stack, provider, code_dir):
    _function(
        stack,
        provider,
        code_dir,
        code_signing_config=_signed(stack, provider),
        logging_format=lambda_.LoggingFormat.TEXT,
    )
    assert fired(stack) == {"MLV-LAMBDA-STRUCTURED-LOGS"}


# --- KMS key guards ------------------------------------------------------------------------------------------


def test_rule_kms_guards_accepts_a_guarded_key(stack):
    guarded_key(stack)
    assert fired(stack) == set()


def test_rule_kms_guards_fires_on_an_unguarded_key(stack):
    kms.Key(stack, "Plain", enable_key_rotation=True)
    violations = check_assembly(App.of(stack).synth(), CTX)
    assert {v.rule for v in violations} == {"MLV-KMS-GUARDS"}
    assert {m.split(" to ")[0] for m in (v.message for v in violations)} == {
        f"key policy must deny {a}"
        for a in (
            "kms:ScheduleKeyDeletion",
            "kms:DisableKey",
            "kms:DisableKeyRotation",
            "kms:DeleteImportedKeyMaterial",
            "kms:PutKeyPolicy",
            "kms:CreateGrant",
        )
    }


@pytest.mark.parametrize(
    ("exempt", "fires_for"),
    [
        ("someone-else", {"kms:ScheduleKeyDeletion", "kms:PutKeyPolicy", "kms:CreateGrant"}),
        ("deployer", {"kms:ScheduleKeyDeletion", "kms:CreateGrant"}),  # the deployer may only change the policy
    ],
)
def test_rule_kms_guards_fires_when_another_principal_is_exempt(stack, exempt, fires_for):
    key = kms.Key(stack, "Key", enable_key_rotation=True)
    other = deployment_role_arn(stack, "hnb659fds") if exempt == "deployer" else role_arn(stack, exempt)
    guard_key(key, other, other)
    messages = [v.message for v in check_assembly(App.of(stack).synth(), CTX) if v.rule == "MLV-KMS-GUARDS"]
    assert all(any(action in m for m in messages) for action in fires_for), messages


def test_rule_kms_guards_fires_when_a_condition_narrows_the_deny(stack):
    key = guarded_key(stack)
    key.node.default_child.add_property_override(
        "KeyPolicy.Statement.1.Condition.StringEquals", {"aws:RequestedRegion": "eu-west-1"}
    )
    assert fired(stack) == {"MLV-KMS-GUARDS"}


def _asset_dir(tmp_path: Path, name: str, files: dict[str, str]) -> str:
    directory = tmp_path / name
    for relative, text in files.items():
        (directory / relative).parent.mkdir(parents=True, exist_ok=True)
        (directory / relative).write_text(text)
    return str(directory)


def test_rule_lambda_size_fires_when_code_and_layers_unzip_to_250_mib(stack, provider, tmp_path):
    layer_dir = _asset_dir(tmp_path, "layer", {"python/big.so": "x"})
    layer = lambda_.LayerVersion(stack, "Wheels", code=_code(stack, provider, layer_dir, "WheelsCode"))
    code_dir = _asset_dir(tmp_path, "code", {"handler.py": "def handler(e, c): ..."})
    _function(stack, provider, code_dir, layers=[layer], code_signing_config=_signed(stack, provider))
    assembly = App.of(stack).synth()
    assert {v.rule for v in check_assembly(assembly, CTX)} == set()
    # The synthesized layer asset grows (a sparse file: no bytes written) until code + layer exceed the limit.
    template = assembly.get_stack_by_name(stack.stack_name).template
    (layer_id,) = [k for k, r in template["Resources"].items() if r["Type"] == "AWS::Lambda::LayerVersion"]
    signed = template["Resources"][layer_id]["Properties"]["Content"]["S3Key"]["Fn::GetAtt"][0]
    key = template["Resources"][signed]["Properties"]["SourceKey"]  # signed from this asset
    big = assembly_assets(assembly.directory)[key] / "python" / "big.so"
    code_bytes = sum(f.stat().st_size for f in Path(assembly.directory).glob("asset.*/handler.py"))
    code_bytes -= Path("lambdas/signer/handler.py").stat().st_size  # the signer's own code is not this function's
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


def test_rule_lambda_size_fires_on_a_layer_it_cannot_measure(stack, provider, code_dir):
    """A layer of another account: neither measurable nor known to be signed by the stage's profile."""
    _function(
        stack,
        provider,
        code_dir,
        layers=[
            lambda_.LayerVersion.from_layer_version_arn(
                stack, "Foreign", "arn:aws:lambda:eu-west-1:123456789012:layer:x:1"
            )
        ],
        code_signing_config=_signed(stack, provider),
    )
    assert fired(stack) == {"MLV-LAMBDA-SIZE", "MLV-LAMBDA-CODE-SIGNING"}


def test_own_rules_cannot_be_acknowledged_and_fail_synth(stack):
    bucket = s3.Bucket(stack, "Anonymous", enforce_ssl=True, encryption=s3.BucketEncryption.S3_MANAGED)
    acknowledge(bucket, "AwsSolutions-S1", "an acknowledgement must not silence our own rules")
    bucket.node.default_child.add_metadata("cdk_nag", {"rules_to_suppress": [{"id": "MLV-BUCKET-ROLE"}]})
    assembly = App.of(stack).synth()

    class Settings:
        break_glass_role_name = "mlvault-break-glass"
        code_signing_policy = "Warn"
        cdk_qualifier = "hnb659fds"

    out = io.StringIO()
    assert enforce(assembly, Settings, out=out) == 1
    assert "[MLV-BUCKET-ROLE] Broken/Anonymous" in out.getvalue()
    assert "cannot be acknowledged" in out.getvalue()
