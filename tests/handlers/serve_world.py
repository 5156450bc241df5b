"""The serving function's world on moto, for the serve handler tests: the models bucket, the registry and KMS keys
as the function sees them, its pinned environment and bundled trust anchors, a signed model package pinned, and
the function's stdout read back as EMF metrics and log lines."""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from types import SimpleNamespace

import boto3
import pytest
from botocore.exceptions import ClientError

from mlvault import model_package
from mlvault.attestation.openssf import kms_public_key_pem
from mlvault.observability import logger
from mlvault.registry.records import ModelRegistry
from mlvault.serving import loader as serving
from mlvault.serving.loader import ModelLoader
from mlvault.training.artifact import Feature, Model
from mlvault.trust.anchors import SigningKey
from tests.handlers.conftest import LambdaContext, key_value_table, load_handler, versioned_buckets
from tests.handlers.serving_packages import built_in_files, pack, sign_files

serve = load_handler("serve")

BUCKET = "mlvault-test-models"
TABLE = "registry"
MODEL_ID = "iris/3"
MODEL_KEY = "models/iris/sha256=0/model.tar"
SIGNATURE_KEY = "signatures/iris/3/model.sig"
SETOSA = {"petal_length": 1.0, "site": "north"}  # model A: setosa, model B: virginica
VIRGINICA = {"petal_length": 6.0, "site": "south"}


def make_model(sign: float = 1.0) -> Model:
    return Model(
        dataset="iris",
        contract_version="1",
        label="species",
        classes=("setosa", "virginica"),
        features=(Feature("petal_length", "numeric", mean=3.0, scale=1.0), Feature("site", "category", value="north")),
        weights=((-2.0 * sign, 0.5), (2.0 * sign, -0.5)),
        bias=(0.0, 0.0),
        training={"trainer": "test"},
    )


FILES_A = built_in_files(make_model())  # the built-in format: a softmax regression as an ONNX graph
FILES_B = built_in_files(make_model(-1.0))  # another model: the opposite predictions
MODEL_A = pack(FILES_A)
MODEL_B = pack(FILES_B)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class Env:
    """The models bucket, registry and KMS keys as the serving function sees them, and its pinned environment."""

    s3: object
    kms: object
    ddb: object
    key_arn: str
    other_key_arn: str
    tmp_path: object
    monkeypatch: object
    versions: dict[str, str] = field(default_factory=dict)
    task_root: Path = Path(".")

    def put(self, key: str, data: bytes) -> str:
        return self.s3.put_object(Bucket=BUCKET, Key=key, Body=data)["VersionId"]

    def signature(
        self, files: dict[str, bytes], *, key_arn: str | None = None, model_id: str | None = MODEL_ID, **signed
    ) -> bytes:
        """The OpenSSF signature of the package directory of `files` (one resource per file), as the sign step
        signs it: the model id and the digest of the package tar of these files (`package_sha256`)."""
        if "package_sha256" not in signed:
            signed["package_sha256"] = sha256(pack(files))
        return sign_files(self.kms, key_arn or self.key_arn, files, model_id=model_id, **signed)

    def publish(self, files: dict[str, bytes], *, tar: bytes | None = None, signed: dict[str, bytes] | None = None):
        """Store a package (its tar, or `tar`) and a signature over `signed` (default: the same files), and pin the
        function to both."""
        data = pack(files) if tar is None else tar
        self.pin(
            MLVAULT_MODEL_VERSION=self.put(MODEL_KEY, data),
            MLVAULT_MODEL_DIGEST=sha256(data),
            MLVAULT_SIGNATURE_VERSION=self.put(SIGNATURE_KEY, self.signature(files if signed is None else signed)),
        )
        return data

    def status(self, status: str | None) -> None:
        key = {"pk": {"S": f"MODEL#{MODEL_ID}"}, "sk": {"S": "RECORD"}}
        if status is None:
            self.ddb.delete_item(TableName=TABLE, Key=key)
        else:
            self.ddb.put_item(TableName=TABLE, Item={**key, "model_id": {"S": MODEL_ID}, "status": {"S": status}})

    def pin(self, **env: str) -> None:
        for name, value in env.items():
            self.monkeypatch.setenv(name, value)
        clear_caches()

    def signing_key(self, key_arn: str | None = None) -> SigningKey:
        arn = key_arn or self.key_arn
        return SigningKey(arn, hashlib.sha256(kms_public_key_pem(self.kms, arn)).hexdigest())

    def anchor(self, key_arn: str | None = None, **changes) -> dict:
        """Bundle trust anchors naming this key (the signer writes them into the function's code at deploy time)."""
        arn = key_arn or self.key_arn
        try:
            fingerprint = self.signing_key(arn).public_key_sha256
        except (ClientError, ValueError):  # a key KMS cannot show (tests of refused keys)
            fingerprint = "0" * 64
        document = {
            "stage": "test",
            "model_signing_key": {"arn": arn, "public_key_sha256": fingerprint},
            "alarms": {"rollback": ["mlvault-test-serving-errors"], "canary": ["mlvault-test-serving-errors"]},
            **changes,
        }
        write_anchors(self.task_root, document)
        clear_caches()
        return document

    def loader(self, **kwargs) -> ModelLoader:
        return ModelLoader(self.s3, self.kms, ModelRegistry(self.ddb, TABLE), signing_key=self.signing_key(), **kwargs)


def write_anchors(task_root: Path, document: dict | str) -> None:
    path = task_root / "trust" / "anchors.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(document if isinstance(document, str) else json.dumps(document))


def write_served_model(task_root: Path, document: dict | str | None = None) -> None:
    """The serving function's own model (trust/served-model.json), as infra bundles it."""
    path = task_root / "trust" / "served-model.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {"stage": "test", "model": "iris", "dataset": "iris"} if document is None else document
    path.write_text(document if isinstance(document, str) else json.dumps(document))


def clear_caches() -> None:
    serving.settings.cache_clear()
    serving.default_server.cache_clear()
    serving.metric_model.cache_clear()


@pytest.fixture
def env(aws, monkeypatch, tmp_path):
    s3 = boto3.client("s3")
    kms = boto3.client("kms")
    ddb = boto3.client("dynamodb")
    versioned_buckets(s3, BUCKET)
    key_value_table(ddb, TABLE)
    keys = [kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["Arn"] for _ in "ab"]
    e = Env(s3, kms, ddb, keys[0], keys[1], tmp_path, monkeypatch)
    e.task_root = tmp_path / "task"
    monkeypatch.setenv("LAMBDA_TASK_ROOT", str(e.task_root))
    e.anchor()
    write_served_model(e.task_root)
    e.versions["a"] = e.put(MODEL_KEY, MODEL_A)
    e.versions["sig"] = e.put(SIGNATURE_KEY, e.signature(FILES_A))
    e.status("SIGNED")
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "serve")
    e.pin(
        MLVAULT_STAGE="test",
        MLVAULT_MODEL_BUCKET=BUCKET,
        MLVAULT_MODEL_KEY=MODEL_KEY,
        MLVAULT_MODEL_VERSION=e.versions["a"],
        MLVAULT_MODEL_DIGEST=sha256(MODEL_A),
        MLVAULT_SIGNATURE_KEY=SIGNATURE_KEY,
        MLVAULT_SIGNATURE_VERSION=e.versions["sig"],
        MLVAULT_REGISTRY_TABLE=TABLE,
        MLVAULT_MODEL_ID=MODEL_ID,
    )
    yield e
    clear_caches()


class _CurrentStdout:
    """Writes to whatever sys.stdout is when a line is written (the logger's handler kept the stdout of its import,
    and pytest swaps sys.stdout between phases)."""

    def write(self, text: str) -> int:
        return sys.stdout.write(text)

    def flush(self) -> None:
        sys.stdout.flush()


@pytest.fixture
def out(capsys, monkeypatch):
    """The function's stdout as JSON objects: EMF metrics ("_aws") and log lines ("level")."""
    monkeypatch.setattr(logger.registered_handler, "stream", _CurrentStdout())

    def read() -> list[dict]:
        return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]

    return read


class ServeContext(LambdaContext):
    function_name = "serve"
    function_version = "7"  # the published version serving (each pins one model)


def invoke(event: dict | None = None, context: LambdaContext | None = None) -> dict:
    return serve.handler({"rows": [SETOSA, VIRGINICA]} if event is None else event, context or ServeContext())


def metrics(lines: list[dict]) -> list[dict]:
    return [line for line in lines if "_aws" in line]


def refused(out, reason: str, event: dict | None = None) -> SimpleNamespace:
    """Invoke: it must answer a structured refusal with `reason` (not a function error, no traceback), emit exactly
    one ModelAttestationFailed metric and log the reason with its detail."""
    out()  # what earlier invocations wrote (their Predictions counts) is not this refusal's
    answer = invoke(event)
    lines = out()
    [log] = [line for line in lines if line.get("level") == "ERROR"]
    if "statusCode" in answer:  # the function URL's answer: 503, the same error in the body
        assert answer["statusCode"] == 503
        answer = json.loads(answer["body"])
    assert set(answer) == {"error"}, answer
    assert answer["error"]["code"] == reason, log.get("detail")
    assert (answer["error"]["kind"], answer["error"]["field"]) == ("model", "")
    assert "Traceback" not in json.dumps(answer)
    [metric] = metrics(lines)
    [definition] = metric["_aws"]["CloudWatchMetrics"]
    assert definition["Namespace"] == "mlvault"
    assert definition["Metrics"] == [{"Name": "ModelAttestationFailed", "Unit": "Count"}]
    assert definition["Dimensions"] == [
        ["Stage"],
        ["Stage", "Reason"],
        ["Stage", "Model"],
        ["Stage", "Model", "Reason"],
    ]
    assert (metric["Stage"], metric["Reason"], metric["ModelAttestationFailed"]) == ("test", reason, [1.0])
    assert metric["Model"] == "iris"  # the model's own alarm watches [Stage, Model]
    assert (log["reason"], log["stage"]) == (reason, "test")
    assert log["detail"] not in answer["error"]["message"]  # internal resources stay in the log
    return SimpleNamespace(reason=log["reason"], detail=log["detail"], model_version=log["model_version"])


@cache
def files_digest(files_key: str) -> dict[str, str]:
    """name -> sha256 of package A's or B's files."""
    files = {"a": FILES_A, "b": FILES_B}[files_key]
    return {name: sha256(files[name]) for name in model_package.FILES}
