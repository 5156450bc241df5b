"""The stateless ingest stack: the verify function is built to mlvault's rules and wired to the queue."""

from __future__ import annotations

import pytest

from infra.policy.spec import PROTECTED_OBJECT_ACTIONS


@pytest.fixture(scope="module")
def ingest(synthesized):
    return synthesized.template("-ingest")


def of_type(template, type_):
    return [r for r in template["Resources"].values() if r["Type"] == type_]


def test_verify_function(ingest):
    (fn,) = of_type(ingest, "AWS::Lambda::Function")
    props = fn["Properties"]
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
    }
    assert len(props["Layers"]) == 2


def test_code_signing_config_is_signer_backed_with_the_stage_policy(ingest):
    (csc,) = of_type(ingest, "AWS::Lambda::CodeSigningConfig")
    assert csc["Properties"]["CodeSigningPolicies"] == {"UntrustedArtifactOnDeployment": "Warn"}
    (profile,) = of_type(ingest, "AWS::Signer::SigningProfile")
    assert profile["Properties"]["PlatformId"] == "AWSLambda-SHA384-ECDSA"


def test_queue_feeds_the_function_in_batches_with_partial_failures(ingest):
    (mapping,) = of_type(ingest, "AWS::Lambda::EventSourceMapping")
    props = mapping["Properties"]
    assert props["BatchSize"] == 10
    assert props["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert "Fn::ImportValue" in props["EventSourceArn"]


def test_verifier_cannot_delete_or_unlock_anything(ingest):
    actions = [
        a
        for policy in of_type(ingest, "AWS::IAM::Policy")
        for s in policy["Properties"]["PolicyDocument"]["Statement"]
        for a in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]])
    ]
    assert not [a for a in actions if a in PROTECTED_OBJECT_ACTIONS or "*" in a], actions


def test_function_logs_to_an_encrypted_retained_log_group(ingest):
    (group,) = of_type(ingest, "AWS::Logs::LogGroup")
    assert group["Properties"]["LogGroupName"] == "/mlvault/dev/verify"
    assert group["Properties"]["RetentionInDays"] == 30
    assert "KmsKeyId" in group["Properties"]
