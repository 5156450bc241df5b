"""The stateless ingest stack: functions built to mlvault's rules, wired to the queue, least privilege."""

from __future__ import annotations

import json

import pytest

from infra.policy.spec import PROTECTED_OBJECT_ACTIONS


@pytest.fixture(scope="module")
def ingest(synthesized):
    return synthesized.template("-ingest")


def of_type(template, type_):
    return {k: r for k, r in template["Resources"].items() if r["Type"] == type_}


def function(template, name):
    (fn,) = [r for k, r in of_type(template, "AWS::Lambda::Function").items() if k.startswith(name)]
    return fn["Properties"]


def source_key(template, name):
    """The asset a function's code is signed from: its signed-code resource's SourceKey."""
    code = function(template, name)["Code"]
    (resource, attribute) = code["S3Key"]["Fn::GetAtt"]
    assert attribute == "Key"
    signed = template["Resources"][resource]
    assert signed["Type"] == "Custom::MlvaultSignedCode"
    return signed["Properties"]["SourceKey"]


def role_statements(template, role_prefix):
    """Statements of the policies attached to the role whose logical id starts with role_prefix."""
    return [
        s
        for p in of_type(template, "AWS::IAM::Policy").values()
        if any(r.get("Ref", "").startswith(role_prefix) for r in p["Properties"]["Roles"])
        for s in p["Properties"]["PolicyDocument"]["Statement"]
    ]


def actions_of(statements):
    return {a for s in statements for a in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]])}


def test_verify_function(ingest):
    props = function(ingest, "VerifyFunction")
    assert props["Handler"] == "handler.handler"
    assert props["Runtime"] == "python3.14"
    assert props["LoggingConfig"]["LogFormat"] == "JSON"
    assert "TargetArn" in props["DeadLetterConfig"]
    assert "CodeSigningConfigArn" in props
    env = props["Environment"]["Variables"]
    assert set(env) >= {
        "MLVAULT_STAGE",
        "MLVAULT_INGEST_BUCKET",
        "MLVAULT_LAKE_BUCKET",
        "MLVAULT_QUARANTINE_BUCKET",
        "MLVAULT_LEDGER_TABLE",
        "MLVAULT_MAX_UPLOAD_BYTES",
        "MLVAULT_ALERT_TOPIC_ARN",
    }
    assert env["MLVAULT_TRUST_FILE"] == "trust/producers.json"
    assert env["MLVAULT_CONTRACTS_DIR"] == "contracts"
    assert len(props["Layers"]) == 3


def test_the_verifier_bundles_the_registry_and_every_contract(synthesized, ingest):
    from pathlib import Path

    code = source_key(ingest, "VerifyFunction")
    asset = Path(synthesized.outdir) / f"asset.{code.removesuffix('.zip')}"
    bundled = sorted(str(p.relative_to(asset / "contracts")) for p in (asset / "contracts").rglob("*.json"))
    repo = Path(__file__).resolve().parents[2] / "contracts"
    assert bundled == sorted(str(p.relative_to(repo)) for p in repo.rglob("*.json"))
    assert (asset / "trust/producers.json").is_file()


def test_the_review_function_can_only_release_held_bytes_into_the_lake(ingest):
    statements = role_statements(ingest, "ReviewRole")
    s3 = {a: json.dumps(s["Resource"]) for s in statements for a in s["Action"] if a.startswith("s3:")}
    assert set(s3) == {"s3:GetObject", "s3:GetObjectVersion", "s3:PutObject"}
    assert s3["s3:PutObject"].endswith('/datasets/*"]]}')
    assert s3["s3:GetObjectVersion"].endswith('/held/*"]]}')
    assert not actions_of(statements) & {"s3:DeleteObject", "s3:DeleteObjectVersion", "s3:PutObjectTagging"}
    assert "-ingest-" not in json.dumps(statements)  # it never reads an upload itself, only the held copy


@pytest.mark.parametrize("name", ["VerifyFunction", "ReconcileFunction"])
def test_the_verifiers_get_pyarrow_a_full_vcpu_and_room_to_spool_an_upload(ingest, synthesized, name):
    props = function(ingest, name)
    layers = {r["Ref"] for r in props["Layers"]}
    (arrow,) = [k for k in layers if k.startswith("PlatformArrowLayer")]
    assert ingest["Resources"][arrow]["Type"] == "AWS::Lambda::LayerVersion"
    assert props["MemorySize"] == 1769
    max_upload_mib = -(-synthesized.settings.max_upload_bytes // 2**20)
    assert props["EphemeralStorage"] == {"Size": min(max_upload_mib + 512, 10240)}


def test_only_the_verifiers_get_pyarrow(ingest):
    arrow = {k for k in of_type(ingest, "AWS::Lambda::LayerVersion") if k.startswith("PlatformArrowLayer")}
    users = sorted(
        k
        for k, r in of_type(ingest, "AWS::Lambda::Function").items()
        if arrow & {layer.get("Ref") for layer in r["Properties"]["Layers"]}
    )
    assert [u.rstrip("0123456789ABCDEF") for u in users] == ["ReconcileFunction", "VerifyFunction"]


def test_spool_storage_is_the_upload_rounded_up_to_mib_plus_512_capped():
    from infra.constructs.functions import spool_storage_mib

    assert spool_storage_mib(1) == spool_storage_mib(2**20) == 513
    assert spool_storage_mib(2**20 + 1) == 514
    assert spool_storage_mib(5 * 2**30) == 5632
    assert spool_storage_mib(10 * 2**30) == 10240


def test_the_trust_registry_ships_with_the_verifier(synthesized):
    from localcloud.cdkout import load_assembly
    from tests.conftest import ROOT

    (stack,) = [s for s in load_assembly(synthesized.outdir) if s.name.endswith("-ingest")]
    asset = stack.assets[source_key(stack.template, "VerifyFunction")]
    assert json.loads((asset / "trust/producers.json").read_text()) == json.loads((ROOT / "trust/dev.json").read_text())
    assert (asset / "handler.py").is_file()
    assert not list(asset.rglob("__pycache__"))


def test_code_signing_config_trusts_the_stages_profile_and_enforces(ingest):
    (csc,) = of_type(ingest, "AWS::Lambda::CodeSigningConfig").values()
    assert csc["Properties"]["CodeSigningPolicies"] == {"UntrustedArtifactOnDeployment": "Enforce"}
    (profile,) = csc["Properties"]["AllowedPublishers"]["SigningProfileVersionArns"]
    assert profile["Fn::ImportValue"].startswith("mlvault-dev-signing:")  # the stage's one profile
    assert not of_type(ingest, "AWS::Signer::SigningProfile")


def test_queue_feeds_the_verifier_in_batches_with_partial_failures(ingest):
    (mapping,) = of_type(ingest, "AWS::Lambda::EventSourceMapping").values()
    props = mapping["Properties"]
    assert props["BatchSize"] == 10
    assert props["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert "Fn::ImportValue" in props["EventSourceArn"]


def test_verifier_has_only_what_it_needs(ingest):
    statements = role_statements(ingest, "VerifyRole")
    actions = actions_of(statements)
    assert not [a for a in actions if a in PROTECTED_OBJECT_ACTIONS or "*" in a], actions
    assert {"s3:GetObject", "s3:PutObject", "dynamodb:PutItem", "events:PutEvents", "sns:Publish"} <= actions
    by_action = {}
    for s in statements:
        for a in s["Action"] if isinstance(s["Action"], list) else [s["Action"]]:
            by_action.setdefault(a, []).extend(s["Resource"] if isinstance(s["Resource"], list) else [s["Resource"]])
    writes = json.dumps(by_action["s3:PutObject"])
    assert "lake" in writes
    assert "/datasets/*" in writes
    assert "/rejected/*" in writes
    assert "ingest" not in writes  # the verifier never writes uploads


def test_reconciler_runs_on_a_schedule(ingest):
    (rule,) = [r for r in of_type(ingest, "AWS::Events::Rule").values() if "ScheduleExpression" in r["Properties"]]
    assert rule["Properties"]["ScheduleExpression"] == "rate(15 minutes)"
    env = function(ingest, "ReconcileFunction")["Environment"]["Variables"]
    assert env["MLVAULT_RECONCILE_DEADLINE_SECONDS"] == "900"
    assert "sqs:SendMessage" in actions_of(role_statements(ingest, "ReconcileRole"))


def test_each_producer_role_writes_only_its_own_prefix(ingest):
    roles = {
        r["Properties"]["RoleName"]: k
        for k, r in of_type(ingest, "AWS::IAM::Role").items()
        if "RoleName" in r["Properties"]
    }
    assert set(roles) == {
        "mlvault-dev-producer-acme",
        "mlvault-dev-producer-demo-producer",
        "mlvault-dev-producer-globex",
    }
    for name, logical in roles.items():
        producer = name.removeprefix("mlvault-dev-producer-")
        statements = role_statements(ingest, logical)
        (put,) = [s for s in statements if "s3:PutObject" in s["Action"]]
        assert json.dumps(put["Resource"]).endswith(f'/producers/{producer}/*"]]}}')
        assert not actions_of(statements) & {"s3:DeleteObject", "s3:GetObject", "s3:*"}


def test_function_logs_to_encrypted_retained_log_groups(ingest):
    groups = {g["Properties"]["LogGroupName"]: g for g in of_type(ingest, "AWS::Logs::LogGroup").values()}
    assert set(groups) == {"/mlvault/dev/verify", "/mlvault/dev/reconcile", "/mlvault/dev/review"}
    for group in groups.values():
        assert group["Properties"]["RetentionInDays"] == 30
        assert "KmsKeyId" in group["Properties"]


def test_the_stage_is_discoverable(synthesized):
    names = {
        p["Properties"]["Name"]
        for t in synthesized.templates.values()
        for p in t["Resources"].values()
        if p["Type"] == "AWS::SSM::Parameter"
    }
    assert {
        "/mlvault/dev/ingest-bucket",
        "/mlvault/dev/ledger-table",
        "/mlvault/dev/alert-topic",
        "/mlvault/dev/producer-role/acme",
    } <= names


def test_a_changed_policy_file_changes_the_function_asset(tmp_path):
    """The bundle's hash is its content: with the handler directory's hash, cdk reused a stale bundle of the same
    hash and a registry or contract change would not have reached the function."""
    from aws_cdk import App, Stack
    from aws_cdk import aws_s3_assets as assets

    from infra.constructs.functions import function_asset
    from infra.settings import ROOT

    def s3_key(content: str) -> str:
        (tmp_path / "trust.json").write_text(content)
        app = App(outdir=str(tmp_path / "out"))
        stack = Stack(app, "S")
        options = function_asset(ROOT / "lambdas" / "verify", {"trust/producers.json": tmp_path / "trust.json"})
        return assets.Asset(stack, "Code", **options).s3_object_key

    assert s3_key('{"producers": {}}') != s3_key('{"producers": {"x": {}}}')
