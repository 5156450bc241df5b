"""Code signing Enforce with `cdk deploy` as the one command: the signing stack (profile, signed-code bucket, the
signer and its least-privilege role), every function's code and every layer deployed from a signed-code resource,
trust anchors signed into the code of the functions that decide whom to trust, environments encrypted with the
stage's key; and template-level attacks that our own rules refuse."""

from __future__ import annotations

import copy
import json

import pytest

from infra.policy.rules import RuleContext, check_templates
from infra.policy.spec import CODE_SIGNING_EXCEPTION_METADATA_KEY

SIGNED_CODE = "Custom::MlvaultSignedCode"


@pytest.fixture(scope="module")
def signing(synthesized):
    return synthesized.template("-signing")


def of_type(template, type_):
    return {k: r for k, r in template["Resources"].items() if r["Type"] == type_}


def functions(synthesized):
    return {
        (stack, k): r["Properties"]
        for stack, template in synthesized.templates.items()
        for k, r in of_type(template, "AWS::Lambda::Function").items()
    }


def signed_code_of(template, location):
    """The signed-code resource a Code / Content comes from (all three attributes from the same one)."""
    refs = {location[p]["Fn::GetAtt"][0] for p in ("S3Bucket", "S3Key", "S3ObjectVersion")}
    assert [location[p]["Fn::GetAtt"][1] for p in ("S3Bucket", "S3Key", "S3ObjectVersion")] == [
        "Bucket",
        "Key",
        "Version",
    ]
    (resource,) = refs
    assert template["Resources"][resource]["Type"] == SIGNED_CODE
    return template["Resources"][resource]["Properties"]


def role_statements(template, role_prefix):
    return [
        s
        for p in of_type(template, "AWS::IAM::Policy").values()
        if any(r.get("Ref", "").startswith(role_prefix) for r in p["Properties"]["Roles"])
        for s in p["Properties"]["PolicyDocument"]["Statement"]
    ]


def test_the_signing_stack_comes_after_storage_and_before_the_stacks_with_functions(synthesized):
    names = list(synthesized.templates)
    assert [n.rsplit("-", 1)[1] for n in names] == ["storage", "signing", "ingest", "models"]
    signing = json.dumps(synthesized.template("-signing"))
    assert "mlvault-dev-storage:" in signing  # the data key and the pinned model-signing key
    for suffix in ("-ingest", "-models"):
        assert "mlvault-dev-signing:" in json.dumps(synthesized.template(suffix))
    assert not of_type(synthesized.template("-storage"), "AWS::Lambda::Function")


def test_one_signing_profile_per_stage(synthesized, signing):
    (profile,) = of_type(signing, "AWS::Signer::SigningProfile").values()
    assert profile["Properties"]["PlatformId"] == "AWSLambda-SHA384-ECDSA"
    assert sum(len(of_type(t, "AWS::Signer::SigningProfile")) for t in synthesized.templates.values()) == 1


def test_the_signed_code_bucket_is_versioned_encrypted_tls_only_and_keeps_its_evidence(signing):
    (bucket,) = of_type(signing, "AWS::S3::Bucket").values()
    props = bucket["Properties"]
    assert bucket["Metadata"]["mlvault:role"] == "signed-code"
    assert bucket["DeletionPolicy"] == "Retain"
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}
    (rule,) = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
    assert "LifecycleConfiguration" not in props  # signed code is never expired
    (policy,) = of_type(signing, "AWS::S3::BucketPolicy").values()
    sids = {s.get("Sid") for s in policy["Properties"]["PolicyDocument"]["Statement"]}
    assert "DenyDeletingSignedCodeExceptBreakGlass" in sids


def test_the_signer_is_the_only_unsigned_function(synthesized, signing):
    """Every function but one runs code a signed-code resource produced; the one is the signer, alone in the
    signing stack, marked, without layers or code signing config, from its own asset."""
    unsigned = {key: fn for key, fn in functions(synthesized).items() if "Fn::GetAtt" not in json.dumps(fn["Code"])}
    ((stack, fn_id),) = unsigned
    assert stack.endswith("-signing")
    assert set(of_type(signing, "AWS::Lambda::Function")) == {fn_id}
    signer = signing["Resources"][fn_id]
    assert signer["Metadata"][CODE_SIGNING_EXCEPTION_METADATA_KEY] == "signer"
    props = signer["Properties"]
    assert "Layers" not in props
    assert "CodeSigningConfigArn" not in props
    assert isinstance(props["Code"]["S3Key"], str)  # the asset itself: nothing could have signed it yet
    assert props["Handler"] == "handler.handler"
    assert props["LoggingConfig"]["LogFormat"] == "JSON"
    assert "TargetArn" in props["DeadLetterConfig"]


def test_every_function_and_layer_is_deployed_from_code_the_signer_signed(synthesized):
    signed = 0
    for stack, template in synthesized.templates.items():
        for fn in of_type(template, "AWS::Lambda::Function").values():
            if CODE_SIGNING_EXCEPTION_METADATA_KEY in fn.get("Metadata", {}):
                continue
            props = fn["Properties"]
            resource = signed_code_of(template, props["Code"])
            assert resource["ServiceToken"]["Fn::ImportValue"].startswith("mlvault-dev-signing:")
            assert "SignerFunction" in resource["ServiceToken"]["Fn::ImportValue"]
            assert resource["SourceKey"].endswith(".zip")
            assert resource["DestinationPrefix"].startswith(f"signed/{stack}/")
            assert "CodeSigningConfigArn" in props
            signed += 1
        for layer in of_type(template, "AWS::Lambda::LayerVersion").values():
            signed_code_of(template, layer["Properties"]["Content"])
    assert signed >= 9


def test_every_code_signing_config_enforces_the_stages_profile(synthesized):
    configs = [c for t in synthesized.templates.values() for c in of_type(t, "AWS::Lambda::CodeSigningConfig").values()]
    assert len(configs) == 2  # one per stack with functions
    for config in configs:
        assert config["Properties"]["CodeSigningPolicies"] == {"UntrustedArtifactOnDeployment": "Enforce"}
        (arn,) = config["Properties"]["AllowedPublishers"]["SigningProfileVersionArns"]
        assert "SigningProfile" in arn["Fn::ImportValue"]


def test_the_signers_role_has_least_privilege(signing):
    statements = role_statements(signing, "SignerRole")
    grants = {}
    for s in statements:
        for action in s["Action"] if isinstance(s["Action"], list) else [s["Action"]]:
            grants.setdefault(action, []).append(json.dumps(s["Resource"]))
    assert set(grants) == {
        "logs:CreateLogStream",
        "logs:PutLogEvents",
        "s3:GetObject",
        "s3:GetObjectVersion",
        "s3:PutObject",
        "kms:GenerateDataKey",
        "kms:Decrypt",
        "signer:StartSigningJob",
        "signer:DescribeSigningJob",
        "kms:GetPublicKey",
        "sqs:SendMessage",  # its dead-letter queue
    }
    puts = " ".join(grants["s3:PutObject"])
    assert "-signed-code-" in puts
    assert "/unsigned/*" in puts
    assert "/signed/*" in puts
    assert "cdk-hnb659fds-assets-" not in puts  # it never writes the assets bucket
    assert any("cdk-hnb659fds-assets-" in r for r in grants["s3:GetObject"])
    assert "SigningProfile" in " ".join(grants["signer:StartSigningJob"])
    assert "ModelSigningKey" in " ".join(grants["kms:GetPublicKey"])
    (kms,) = [s for s in statements if "kms:Decrypt" in s["Action"]]
    assert set(kms["Condition"]["StringEquals"]) == {"kms:ViaService", "kms:EncryptionContext:aws:s3:arn"}
    assert not [a for a in grants if "*" in a]


@pytest.mark.parametrize(
    "name", ["IrisServeFunction", "DeployFunction", "AutoRollbackFunction", "RevokeFunction", "SignFunction"]
)
def test_trust_anchors_are_signed_into_the_model_functions(synthesized, name):
    models = synthesized.template("-models")
    ((_, props),) = [
        (k, p) for (s, k), p in functions(synthesized).items() if s.endswith("-models") and k.startswith(name)
    ]
    resource = signed_code_of(models, props["Code"])
    anchors = resource["Bundle"]["trust/anchors.json"]
    assert anchors["stage"] == "dev"
    assert "ModelSigningKey" in anchors["model_signing_key"]["arn"]["Fn::ImportValue"]
    assert "public_key_sha256" not in anchors["model_signing_key"]  # the signer pins it from KMS
    assert resource["PinKeys"] == {"model_signing_key": anchors["model_signing_key"]["arn"]}
    models_ = [m.name for m in synthesized.settings.models]  # every model's alarms, in the anchors' own shape
    assert anchors["alarms"] == {
        "rollback": [f"mlvault-dev-{m}-{a}" for m in models_ for a in ("serving-errors", "feature-drift")],
        "canary": [
            f"mlvault-dev-{m}-{a}"
            for m in models_
            for a in ("serving-errors", "model-attestation-failed", "feature-drift")
        ],
    }


def test_no_function_is_told_whom_to_trust_by_its_environment(synthesized):
    for (_, fn_id), props in functions(synthesized).items():
        env = (props.get("Environment") or {}).get("Variables", {})
        assert not {"MLVAULT_SIGNING_KEY_ARN", "MLVAULT_SERVING_ALARMS"} & set(env), fn_id


def test_the_ingest_functions_carry_their_policy_files_in_the_signed_asset(synthesized):
    ingest = synthesized.template("-ingest")
    for (stack, fn_id), props in functions(synthesized).items():
        if stack.endswith("-ingest"):
            resource = signed_code_of(ingest, props["Code"])
            assert "Bundle" not in resource  # the registry and contracts are in the asset itself
            assert fn_id


def test_environments_are_encrypted_with_the_data_key_and_decryptable_by_their_function(synthesized):
    for (stack, fn_id), props in functions(synthesized).items():
        if "Environment" not in props:
            continue
        assert "DataKey" in props["KmsKeyArn"]["Fn::ImportValue"], fn_id
        role = props["Role"]["Fn::GetAtt"][0]
        statements = role_statements(synthesized.templates[stack], role)
        assert any("kms:Decrypt" in s["Action"] and "DataKey" in json.dumps(s["Resource"]) for s in statements), fn_id


def test_the_deploy_step_may_only_have_lambda_create_grants_for_the_serving_environment(synthesized):
    models = synthesized.template("-models")
    statements = [s for s in role_statements(models, "DeployRole") if "kms:CreateGrant" in json.dumps(s["Action"])]
    (grant,) = statements
    assert grant["Condition"] == {"Bool": {"kms:GrantIsForAWSResource": "true"}}


# --- attacks on the templates: each change is refused by our own rules ---------------------------------------


def violations_after(synthesized, change):
    templates = copy.deepcopy(synthesized.templates)
    change(templates)
    return check_templates(templates, RuleContext.of(synthesized.settings))


def test_the_app_as_synthesized_breaks_no_rule(synthesized):
    assert violations_after(synthesized, lambda templates: None) == []


def test_deploying_the_verifier_from_its_unsigned_asset_fails_synth(synthesized):
    def unsigned(templates):
        ingest = next(t for n, t in templates.items() if n.endswith("-ingest"))
        (fn_id,) = [k for k in of_type(ingest, "AWS::Lambda::Function") if k.startswith("VerifyFunction")]
        code = ingest["Resources"][fn_id]["Properties"]["Code"]
        source = ingest["Resources"][code["S3Key"]["Fn::GetAtt"][0]]["Properties"]
        code.clear()
        code.update({"S3Bucket": source["SourceBucket"], "S3Key": source["SourceKey"]})

    (violation,) = [v for v in violations_after(synthesized, unsigned) if v.rule == "MLV-LAMBDA-CODE-SIGNING"]
    assert violation.resource.startswith("VerifyFunction")


def test_signing_with_another_provider_fails_synth(synthesized):
    def impostor(templates):
        models = next(t for n, t in templates.items() if n.endswith("-models"))
        (cr,) = [r for k, r in of_type(models, SIGNED_CODE).items() if k.startswith("IrisServeCode")]
        cr["Properties"]["ServiceToken"] = "arn:aws:lambda:eu-west-1:123456789012:function:accept-everything"

    violations = [v for v in violations_after(synthesized, impostor) if v.rule == "MLV-LAMBDA-CODE-SIGNING"]
    assert [v.resource[: len("IrisServeFunction")] for v in violations] == ["IrisServeFunction"]


def test_a_second_unsigned_function_marked_as_the_exception_fails_synth(synthesized):
    def mark(templates):
        ingest = next(t for n, t in templates.items() if n.endswith("-ingest"))
        (fn_id,) = [k for k in of_type(ingest, "AWS::Lambda::Function") if k.startswith("ReviewFunction")]
        ingest["Resources"][fn_id].setdefault("Metadata", {})[CODE_SIGNING_EXCEPTION_METADATA_KEY] = "signer"

    messages = [v.message for v in violations_after(synthesized, mark) if v.rule == "MLV-LAMBDA-CODE-SIGNING"]
    assert any("2 functions are marked" in m for m in messages)


def test_warn_where_the_stage_says_enforce_fails_synth(synthesized):
    def warn(templates):
        for template in templates.values():
            for config in of_type(template, "AWS::Lambda::CodeSigningConfig").values():
                config["Properties"]["CodeSigningPolicies"]["UntrustedArtifactOnDeployment"] = "Warn"

    violations = [v for v in violations_after(synthesized, warn) if v.rule == "MLV-LAMBDA-CODE-SIGNING"]
    assert violations
    assert all("must be the stage's 'Enforce', got 'Warn'" in v.message for v in violations)


@pytest.mark.parametrize("key", ["DataKey", "ModelSigningKey"])
@pytest.mark.parametrize(
    "sid",
    [
        "DenyKeyDestructionExceptBreakGlass",
        "DenyKeyPolicyChangesExceptBreakGlassAndDeployer",
        "DenyGrantsExceptBreakGlass",
    ],
)
def test_removing_a_keys_guard_fails_synth(synthesized, key, sid):
    def remove(templates):
        storage = next(t for n, t in templates.items() if n.endswith("-storage"))
        (key_id,) = [k for k in of_type(storage, "AWS::KMS::Key") if k.startswith(key)]
        policy = storage["Resources"][key_id]["Properties"]["KeyPolicy"]
        policy["Statement"] = [s for s in policy["Statement"] if s.get("Sid") != sid]

    violations = violations_after(synthesized, remove)
    assert {v.rule for v in violations} == {"MLV-KMS-GUARDS"}
    assert all(v.resource.startswith(key) for v in violations)


def test_exempting_the_deployer_from_the_deletion_guard_fails_synth(synthesized):
    def widen(templates):
        storage = next(t for n, t in templates.items() if n.endswith("-storage"))
        (key_id,) = [k for k in of_type(storage, "AWS::KMS::Key") if k.startswith("DataKey")]
        statements = storage["Resources"][key_id]["Properties"]["KeyPolicy"]["Statement"]
        destruction = next(s for s in statements if s.get("Sid") == "DenyKeyDestructionExceptBreakGlass")
        policy = next(s for s in statements if s.get("Sid") == "DenyKeyPolicyChangesExceptBreakGlassAndDeployer")
        destruction["Condition"] = copy.deepcopy(policy["Condition"])

    messages = [v.message for v in violations_after(synthesized, widen)]
    assert messages
    assert all("deny kms:" in m and "but the break-glass role 'mlvault-break-glass'" in m for m in messages)
