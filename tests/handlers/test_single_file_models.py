"""Models registered before model packages (record format mlvault.model/v1: one JSON artifact signed as a single
resource ".") stay readable in the registry but are never attested: deployment, rollback targets and
`mlvault verify-model` (attest_registered) refuse them with MODEL_FORMAT_UNSUPPORTED (serving refuses them too:
tests/handlers/test_serve_package.py). New records are packages only (the schema refuses v1)."""

from __future__ import annotations

import hashlib

import pytest

from mlvault.attestation.openssf import kms_public_key_pem, sign_model
from mlvault.attestation.pinned import attest_registered
from mlvault.canonical import canonical_json
from mlvault.errors import ModelRegistryError, RolloutRefused
from mlvault.registry.records import ModelRegistry, record_digest
from mlvault.signing.keys import KmsSigner
from mlvault.trust.anchors import SigningKey
from tests.handlers.test_pipeline_steps import pipeline_env as pipeline_env  # the fixture

LEGACY = canonical_json({"format": "mlvault.model/v1", "type": "softmax-regression", "classes": ["a", "b"]})


def _old_model(env, tmp_path) -> dict:
    s3, kms, key = env["s3"], env["kms"], env["key"]
    digest = hashlib.sha256(LEGACY).hexdigest()
    artifact_key = f"models/iris/sha256={digest}/model.json"
    version = s3.put_object(Bucket="models", Key=artifact_key, Body=LEGACY)["VersionId"]
    record = {
        "format": "mlvault.model/v1",
        "model_id": "iris/1",
        "dataset": "iris",
        "run_id": "old-run",
        "artifact": {"bucket": "models", "key": artifact_key, "version_id": version, "sha256": digest, "bytes": 9},
    }
    path = tmp_path / "model.json"
    path.write_bytes(LEGACY)
    extra = {"mlvault": {"model_id": "iris/1", "record_sha256": record_digest(record)}}
    bundle = sign_model(
        path, KmsSigner(kms, key, key), statement_extra=extra, public_key_pem=kms_public_key_pem(kms, key)
    )
    signature = s3.put_object(Bucket="models", Key="signatures/iris/1/model.sig", Body=bundle)["VersionId"]
    env["ddb"].put_item(
        TableName="registry",
        Item={
            "pk": {"S": "MODEL#iris/1"},
            "sk": {"S": "RECORD"},
            "model_id": {"S": "iris/1"},
            "dataset": {"S": "iris"},
            "run_id": {"S": "old-run"},
            "status": {"S": "DEPLOYED"},
            "record": {"S": canonical_json(record).decode()},
            "record_sha256": {"S": record_digest(record)},
            "history": {"L": []},
            "signature_key": {"S": "signatures/iris/1/model.sig"},
            "signature_version": {"S": signature},
            "signing_key_arn": {"S": key},
        },
    )
    return ModelRegistry(env["ddb"], "registry").model("iris/1")


def test_a_registered_single_file_model_is_readable_but_never_attested(pipeline_env, tmp_path):
    model = _old_model(pipeline_env, tmp_path)
    assert model["record"]["format"] == "mlvault.model/v1"
    assert model["record_intact"]
    key = SigningKey(
        pipeline_env["key"], hashlib.sha256(kms_public_key_pem(pipeline_env["kms"], pipeline_env["key"])).hexdigest()
    )
    with pytest.raises(RolloutRefused) as caught:
        attest_registered(pipeline_env["s3"], pipeline_env["kms"], model, key)
    assert caught.value.reason == "MODEL_FORMAT_UNSUPPORTED"


def test_new_records_are_packages_only(pipeline_env):
    registry = ModelRegistry(pipeline_env["ddb"], "registry")
    with pytest.raises(ModelRegistryError, match="INVALID_RECORD"):
        registry.register(
            {
                "dataset": "iris",
                "run_id": "r",
                "artifact": {"bucket": "models", "key": "k", "version_id": "v", "sha256": "0" * 64, "bytes": 1},
            }
        )
