"""The serve handler on moto: the pinned model package is attested, with the key of the bundled trust anchors,
before anything is served, and every refusal is loud (the ModelAttestationFailed EMF metric and an error log line
with the reason code), answered with a structured error and serves nothing. A bad request is the caller's error: a
structured answer (code, field, message), a ClientErrors metric, never a function error. Served traffic is counted
and compared with the model's training baseline (drift EMF metrics per function version). The package's own
attacks (its tar, its files), ONNX models of other frameworks and the function URL: test_serve_package.py,
test_serve_http.py."""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
from functools import cache

import pytest
from botocore.exceptions import ClientError

from mlvault.attestation import openssf as attest
from mlvault.config import ServeSettings, SettingsError
from mlvault.registry.records import ModelRegistry
from mlvault.serving.loader import AttestationError, ModelLoader, Server
from mlvault.training.params import TrainingParams
from mlvault.training.trainer import LambdaTrainer
from mlvault_tools import samples
from tests.handlers.conftest import ROOT
from tests.handlers.serve_world import (
    BUCKET,
    FILES_A,
    MODEL_A,
    MODEL_B,
    MODEL_ID,
    MODEL_KEY,
    SETOSA,
    SIGNATURE_KEY,
    TABLE,
    ServeContext,
    clear_caches,
    files_digest,
    invoke,
    metrics,
    refused,
    sha256,
    write_anchors,
)
from tests.handlers.serve_world import env as env  # the fixtures
from tests.handlers.serve_world import out as out
from tests.handlers.serving_packages import json_bytes, pack, unpacked
from tests.unit.test_models_trainer import IRIS, VersionedS3, iris_manifest

# --- (1) serving ---------------------------------------------------------------------------------------------


def test_serves_predictions_of_the_attested_model_with_its_provenance(env, out):
    response = invoke()
    assert response == {
        "predictions": ["setosa", "virginica"],
        "model": {"id": MODEL_ID, "digest": sha256(MODEL_A), "version": env.versions["a"]},
    }
    [metric] = metrics(out())  # the count of predictions only: model A carries no drift baseline
    [definition] = metric["_aws"]["CloudWatchMetrics"]
    assert definition["Metrics"] == [{"Name": "Predictions", "Unit": "Count"}]


def test_the_model_is_loaded_once_per_execution_environment(env, out):
    invoke()
    for key, version in ((MODEL_KEY, env.versions["a"]), (SIGNATURE_KEY, env.versions["sig"])):
        env.s3.delete_object(Bucket=BUCKET, Key=key, VersionId=version)  # gone for good: only memory has it now
    assert invoke()["model"]["version"] == env.versions["a"]
    clear_caches()  # a new execution environment
    refused(out, "MODEL_UNSIGNED")


# --- (2) pinned version and digest ----------------------------------------------------------------------------


def test_a_new_object_version_does_not_change_the_pinned_model(env, out):
    env.put(MODEL_KEY, MODEL_B)  # the latest version is another model
    response = invoke()
    assert response["predictions"] == ["setosa", "virginica"]
    assert response["model"]["version"] == env.versions["a"]


def test_the_new_version_pinned_with_the_old_digest_is_refused(env, out):
    version = env.put(MODEL_KEY, MODEL_B)
    env.pin(MLVAULT_MODEL_VERSION=version)
    error = refused(out, "MODEL_DIGEST_MISMATCH")
    assert sha256(MODEL_B) in error.detail
    assert error.model_version == version


def test_other_bytes_pinned_with_their_own_digest_are_refused_by_the_signature(env, out):
    version = env.put(MODEL_KEY, MODEL_B)  # tampered: the signature covers model A's files
    env.pin(MLVAULT_MODEL_VERSION=version, MLVAULT_MODEL_DIGEST=sha256(MODEL_B))
    error = refused(out, "MODEL_DIGEST_MISMATCH")  # verify_model's reason, passed through
    assert "'model.onnx'" in error.detail
    assert files_digest("a")["model.onnx"] in error.detail
    assert files_digest("b")["model.onnx"] in error.detail


# --- (3) unsigned ------------------------------------------------------------------------------------------------


def test_no_signature_object_is_refused(env, out):
    env.pin(MLVAULT_SIGNATURE_KEY="signatures/iris/3/missing.sig")
    refused(out, "MODEL_UNSIGNED")


def test_a_signature_version_that_does_not_exist_is_refused(env, out):
    env.pin(MLVAULT_SIGNATURE_VERSION=env.versions["a"])  # a version id of another object
    refused(out, "MODEL_UNSIGNED")


# --- (4) signed by another key -------------------------------------------------------------------------------


def test_a_model_signed_by_another_kms_key_is_refused(env, out):
    version = env.put(SIGNATURE_KEY, env.signature(FILES_A, key_arn=env.other_key_arn))
    env.pin(MLVAULT_SIGNATURE_VERSION=version)
    error = refused(out, "MODEL_SIGNATURE_INVALID")
    assert "does not verify" in error.detail


def test_a_tampered_signature_is_refused(env, out):
    bundle = json.loads(env.signature(FILES_A))
    entry = bundle["dsseEnvelope"]["signatures"][0]
    sig = bytearray(base64.b64decode(entry["sig"]))
    sig[-1] ^= 1
    entry["sig"] = base64.b64encode(bytes(sig)).decode()
    env.pin(MLVAULT_SIGNATURE_VERSION=env.put(SIGNATURE_KEY, json.dumps(bundle).encode()))
    refused(out, "MODEL_SIGNATURE_INVALID")


@pytest.mark.parametrize("model_id", ["iris/2", None])
def test_a_signature_of_another_model_id_is_refused(env, out, model_id):
    env.pin(MLVAULT_SIGNATURE_VERSION=env.put(SIGNATURE_KEY, env.signature(FILES_A, model_id=model_id)))
    refused(out, "MODEL_ID_MISMATCH")


def test_a_signing_key_that_is_not_p256_is_refused(env, out):
    rsa = env.kms.create_key(KeySpec="RSA_2048", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["Arn"]
    env.anchor(rsa)
    refused(out, "SIGNING_KEY_UNUSABLE")


def test_a_signing_key_that_does_not_exist_is_refused(env, out):
    env.anchor(env.key_arn.rsplit("/", 1)[0] + "/11111111-1111-1111-1111-111111111111")
    refused(out, "SIGNING_KEY_UNUSABLE")


# --- (5) registry -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        ("REVOKED", "MODEL_REVOKED"),
        ("ROLLED_BACK", "MODEL_ROLLED_BACK"),
        (None, "MODEL_NOT_REGISTERED"),
        ("REGISTERED", "MODEL_NOT_SERVABLE"),
        ("SOMETHING_NEW", "MODEL_NOT_SERVABLE"),
    ],
)
def test_the_registry_status_refuses(env, out, status, reason):
    env.status(status)
    refused(out, reason)


@pytest.mark.parametrize("status", ["SIGNED", "DEPLOYED", "SUPERSEDED"])
def test_the_registry_statuses_that_serve(env, out, status):
    env.status(status)
    assert invoke()["predictions"] == ["setosa", "virginica"]


def test_a_model_revoked_after_it_was_loaded_stops_being_served(env):
    now = [0.0]
    pin = ServeSettings.from_env()
    server = Server(env.loader(), pin, recheck_seconds=60, clock=lambda: now[0])
    assert server.model().digest == sha256(MODEL_A)
    env.status("REVOKED")
    now[0] = 59.0
    assert server.model().digest == sha256(MODEL_A)  # within the recheck interval
    now[0] = 60.0
    with pytest.raises(AttestationError, match="MODEL_REVOKED"):
        server.model()
    with pytest.raises(AttestationError, match="MODEL_REVOKED"):  # the loaded model was dropped: loads again
        server.model()
    env.status("SIGNED")
    assert server.model().digest == sha256(MODEL_A)


@pytest.fixture
def aws_key_states(env, monkeypatch):
    """KMS GetPublicKey as AWS answers it for a key that is not Enabled (moto answers it whatever the state):
    DisabledException for a Disabled key, KMSInvalidStateException for one PendingDeletion."""
    real = attest.kms_public_key_pem

    def get_public_key(kms, key_arn):
        state = kms.describe_key(KeyId=key_arn.rsplit("/", 1)[1])["KeyMetadata"]["KeyState"]
        if state == "Disabled":
            raise ClientError(
                {"Error": {"Code": "DisabledException", "Message": f"{key_arn} is disabled."}}, "GetPublicKey"
            )
        if state == "PendingDeletion":
            error = {"Code": "KMSInvalidStateException", "Message": f"{key_arn} is pending deletion."}
            raise ClientError({"Error": error}, "GetPublicKey")
        return real(kms, key_arn)

    monkeypatch.setattr(attest, "kms_public_key_pem", get_public_key)
    return env


@pytest.mark.parametrize("disable", ["disable_key", "schedule_key_deletion"])
def test_a_disabled_signing_key_stops_serving_new_and_warm_environments_alike(aws_key_states, out, disable):
    env = aws_key_states
    now = [0.0]
    warm = Server(env.loader(), ServeSettings.from_env(), recheck_seconds=60, clock=lambda: now[0])
    assert warm.model().digest == sha256(MODEL_A)
    key_id = env.key_arn.rsplit("/", 1)[1]  # moto's state changes take the key id
    getattr(env.kms, disable)(KeyId=key_id)
    refused(out, "SIGNING_KEY_UNUSABLE")  # a new execution environment: GetPublicKey fails as on AWS
    now[0] = 59.0
    assert warm.model().digest == sha256(MODEL_A)  # a warm one until its re-check...
    now[0] = 60.0
    with pytest.raises(AttestationError, match="SIGNING_KEY_UNUSABLE"):  # ...then not either
        warm.model()
    if disable == "schedule_key_deletion":
        env.kms.cancel_key_deletion(KeyId=key_id)
    env.kms.enable_key(KeyId=key_id)
    assert warm.model().digest == sha256(MODEL_A)  # enabled again: served again
    assert invoke()["predictions"] == ["setosa", "virginica"]


def test_a_transient_error_of_the_re_check_keeps_the_verified_model_serving(env, monkeypatch):
    now = [0.0]
    server = Server(env.loader(), ServeSettings.from_env(), recheck_seconds=60, clock=lambda: now[0])
    assert server.model().digest == sha256(MODEL_A)
    real = attest.kms_public_key_pem
    calls = []

    def throttled_once(kms, key_arn):
        calls.append(key_arn)
        if len(calls) == 1:
            raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "slow down"}}, "GetPublicKey")
        return real(kms, key_arn)

    monkeypatch.setattr(attest, "kms_public_key_pem", throttled_once)
    now[0] = 61.0
    assert server.model().digest == sha256(MODEL_A)  # not a verdict: still served
    assert server.model().digest == sha256(MODEL_A)  # re-checked on the next call, fine
    assert len(calls) == 2


# --- (6) the signing key is the bundled anchor, never the environment's -------------------------------------------


def test_a_key_named_in_the_environment_decides_nothing(env, out):
    """The re-pin attack: a model signed by another KMS key, that key named in the environment (as the deploy step
    once pinned it) and the version's pins pointing at its signature: not served."""
    forged = env.put(SIGNATURE_KEY, env.signature(FILES_A, key_arn=env.other_key_arn))
    env.pin(MLVAULT_SIGNING_KEY_ARN=env.other_key_arn, MLVAULT_SIGNATURE_VERSION=forged)
    error = refused(out, "MODEL_SIGNATURE_INVALID")
    assert "does not verify" in error.detail


def test_a_kms_key_whose_public_key_is_not_the_anchored_one_is_refused(env, out):
    env.anchor(
        model_signing_key={
            "arn": env.key_arn,
            "public_key_sha256": env.signing_key(env.other_key_arn).public_key_sha256,
        }
    )
    error = refused(out, "SIGNING_KEY_NOT_TRUSTED")
    assert env.key_arn in error.detail


@pytest.mark.parametrize(
    "key",
    ["arn:aws:kms:eu-west-1:123456789012:alias/mlvault-model-signing", "alias/mlvault-model-signing"],
)
def test_anchors_naming_an_alias_are_refused(env, out, key):
    env.anchor(model_signing_key={"arn": key, "public_key_sha256": "0" * 64})
    error = refused(out, "SIGNING_KEY_NOT_PINNED")
    assert "an alias can be repointed" in error.detail


@pytest.mark.parametrize(
    ("anchors", "reason", "detail"),
    [
        (None, "ANCHORS_MISSING", "no trust/anchors.json in the function's bundle"),
        ("{not json", "ANCHORS_MALFORMED", "expected a JSON object"),
        ({"stage": "test"}, "ANCHORS_MALFORMED", "missing ['alarms', 'model_signing_key']"),
        (
            {"stage": "prod", "model_signing_key": {"arn": "x", "public_key_sha256": "x"}, "alarms": {}},
            "ANCHORS_WRONG_STAGE",
            "of stage 'prod'",
        ),
        (
            {
                "stage": "test",
                "model_signing_key": {"arn": "11111111-1111-1111-1111-111111111111", "public_key_sha256": "0" * 64},
                "alarms": {"rollback": ["a"], "canary": ["a"]},
            },
            "ANCHORS_MALFORMED",
            "expected a KMS key ARN",
        ),
    ],
)
def test_missing_or_malformed_anchors_are_refused(env, out, anchors, reason, detail):
    path = env.task_root / "trust" / "anchors.json"
    if anchors is None:
        path.unlink()
    else:
        write_anchors(env.task_root, anchors)
    clear_caches()
    error = refused(out, reason)
    assert detail in error.detail


def test_settings_refuse_an_unversioned_pin_and_a_malformed_digest(env):
    good = {name: os.environ[name] for name in ServeSettings.ENV.values()}
    ServeSettings.from_env(good)
    with pytest.raises(SettingsError, match=r"MLVAULT_MODEL_VERSION.*'null'"):
        ServeSettings.from_env({**good, "MLVAULT_MODEL_VERSION": "null"})
    with pytest.raises(SettingsError, match=r"MLVAULT_SIGNATURE_VERSION.*'null'"):
        ServeSettings.from_env({**good, "MLVAULT_SIGNATURE_VERSION": "null"})
    with pytest.raises(SettingsError, match="MLVAULT_MODEL_DIGEST"):
        ServeSettings.from_env({**good, "MLVAULT_MODEL_DIGEST": sha256(MODEL_A).upper()})
    with pytest.raises(SettingsError, match="MLVAULT_MODEL_ID is not set"):
        ServeSettings.from_env({k: v for k, v in good.items() if k != "MLVAULT_MODEL_ID"})


# --- (7) loud, every time, and not kept ------------------------------------------------------------------------


def test_every_invocation_is_refused_until_the_model_checks_out(env, out):
    env.status(None)
    refused(out, "MODEL_NOT_REGISTERED")
    refused(out, "MODEL_NOT_REGISTERED")  # not served in between, metric and log again
    env.status("SIGNED")  # fixed: the next invocation loads it
    assert invoke()["predictions"] == ["setosa", "virginica"]
    assert [m for m in metrics(out()) if "ModelAttestationFailed" in m] == []


def test_a_transient_error_is_not_a_verdict(env, out, monkeypatch):
    real, calls = attest.kms_public_key_pem, []

    def throttled_once(kms, key_arn):
        calls.append(key_arn)
        if len(calls) == 1:
            raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "slow down"}}, "GetPublicKey")
        return real(kms, key_arn)

    monkeypatch.setattr(attest, "kms_public_key_pem", throttled_once)
    with pytest.raises(ClientError, match="ThrottlingException"):
        invoke()
    assert metrics(out()) == []  # not a refusal: no metric
    assert invoke()["predictions"] == ["setosa", "virginica"]


def test_a_model_over_the_size_cap_is_refused_before_it_is_read(env):
    loader = env.loader(max_model_bytes=len(MODEL_A) - 1)
    with pytest.raises(AttestationError, match="MODEL_TOO_LARGE") as caught:
        loader.load(ServeSettings.from_env())
    assert str(len(MODEL_A)) in caught.value.detail


def test_a_model_longer_than_announced_is_cut_at_the_cap(env):
    class LyingS3:
        """Announces a small object, then streams more bytes (a size cap must not trust ContentLength)."""

        def get_object(self, **kwargs):
            response = env.s3.get_object(**kwargs)
            if kwargs["Key"] == MODEL_KEY:
                response["ContentLength"] = 1
                response["Body"] = io.BytesIO(MODEL_A * 1000)
            return response

    loader = ModelLoader(
        LyingS3(),
        env.kms,
        ModelRegistry(env.ddb, TABLE),
        signing_key=env.signing_key(),
        max_model_bytes=2 * len(MODEL_A),
    )
    with pytest.raises(AttestationError, match="MODEL_TOO_LARGE"):
        loader.load(ServeSettings.from_env())


def test_a_signed_package_that_is_not_a_model_is_refused(env, out):
    env.publish({**FILES_A, "model.onnx": b'{"format": "mlvault.model/v1", "type": "softmax-regression"}'})
    error = refused(out, "MODEL_MALFORMED")
    assert "does not load in onnxruntime" in error.detail


# --- (8) requests -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event", "code", "where", "message"),
    [
        ([SETOSA], "MALFORMED_REQUEST", "", "expected a request"),
        ({}, "MALFORMED_REQUEST", "", "expected exactly the field 'rows'"),
        ({"row": [SETOSA]}, "MALFORMED_REQUEST", "", "expected exactly the field 'rows'"),
        ({"rows": [SETOSA], "extra": 1}, "MALFORMED_REQUEST", "", "expected exactly the field 'rows'"),
        ({"rows": SETOSA}, "ROWS_NOT_A_LIST", "rows", "rows: expected a list of objects, got dict"),
        ({"rows": [SETOSA, [1.0, "north"]]}, "ROW_NOT_AN_OBJECT", "rows[1]", "rows[1]: expected an object"),
        ({"rows": [SETOSA] * 1001}, "TOO_MANY_ROWS", "rows", "at most 1000 rows, got 1001"),
        ({"rows": [SETOSA] * 10_000}, "TOO_MANY_ROWS", "rows", "at most 1000 rows, got 10000"),
        ({"rows": [{"site": "north"}]}, "MISSING_FEATURE", "rows[0].petal_length", "rows[0]: missing feature"),
        (
            {"rows": [SETOSA, {**SETOSA, "petal_length": "1.0"}]},
            "NOT_A_NUMBER",
            "rows[1].petal_length",
            "rows[1].petal_length: expected a finite number or null, got '1.0'",
        ),
        ({"rows": [{**SETOSA, "petal_length": [1]}]}, "NOT_A_NUMBER", "rows[0].petal_length", "got [1]"),
        ({"rows": [{**SETOSA, "petal_length": float("nan")}]}, "NOT_FINITE", "rows[0].petal_length", "got nan"),
        ({"rows": [{**SETOSA, "petal_length": 10**400}]}, "NOT_FINITE", "rows[0].petal_length", "characters)"),
        ({"rows": [{**SETOSA, "site": 3}]}, "NOT_A_STRING", "rows[0].site", "rows[0].site: expected a string or null"),
    ],
)
def test_a_bad_request_is_answered_with_what_was_wrong_never_a_function_error(env, out, event, code, where, message):
    out()
    answer = invoke(event)  # returns: a client error is not a function error (no traceback, no Errors metric)
    assert set(answer) == {"error"}
    error = answer["error"]
    assert (error["code"], error["field"], error["kind"]) == (code, where, "client")
    assert message in error["message"]
    assert "Traceback" not in json.dumps(answer)
    assert "/" not in error["message"].replace("rows[", "")
    lines = out()
    [metric] = metrics(lines)  # one ClientErrors count per refused request, per reason code
    [definition] = metric["_aws"]["CloudWatchMetrics"]
    assert definition["Metrics"] == [{"Name": "ClientErrors", "Unit": "Count"}]
    assert definition["Dimensions"] == [
        ["Stage"],
        ["Stage", "Reason"],
        ["Stage", "Model"],
        ["Stage", "Model", "Reason"],
    ]
    assert (metric["Stage"], metric["Model"], metric["Reason"], metric["ClientErrors"]) == ("test", "iris", code, [1.0])
    assert not [line for line in lines if line.get("level") == "ERROR"]  # not a server error either


def test_requests_at_the_limits_are_served(env):
    assert invoke({"rows": []})["predictions"] == []
    rows = [SETOSA, {"petal_length": None, "site": None, "label": "ignored"}] * 500
    assert len(invoke({"rows": rows})["predictions"]) == 1000


# --- the serving path stays small ------------------------------------------------------------------------------


def test_importing_the_handler_does_not_import_pyarrow():
    code = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('serve_handler', {str(ROOT / 'lambdas/serve/handler.py')!r})\n"
        "spec.loader.exec_module(importlib.util.module_from_spec(spec))\n"
        "print(sorted(m for m in ('pyarrow', 'numpy', 'boto3', 'onnxruntime') if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert result.stdout.strip() == "[]"  # boto3 too: clients are made on the first invocation; onnxruntime and
    # numpy with the first model loaded, once per execution environment


def test_onnxruntime_is_imported_once_not_per_request(env, monkeypatch):
    import builtins

    invoke()  # the first request loads the model (and onnxruntime)
    seen = []
    real = builtins.__import__

    def spy(name, *args, **kwargs):
        if name.startswith("onnxruntime") or name.endswith("onnx_model"):
            seen.append(name)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", spy)
    for _ in range(3):
        assert invoke()["predictions"] == ["setosa", "virginica"]
    assert seen == []  # warm requests import nothing


# --- drift metrics -----------------------------------------------------------------------------------------------

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width", "site"]


@cache
def iris_files() -> dict[str, bytes]:
    """The package of a model trained on iris by the Lambda trainer, in the built-in format: its drift.json is the
    training baseline the trainer computed."""
    s3 = VersionedS3()
    return unpacked(LambdaTrainer(s3).train(iris_manifest(s3, rows=1000), IRIS, TrainingParams(seed=7)).package)


@cache
def iris_model() -> bytes:
    return pack(iris_files())


@pytest.fixture
def iris(env):
    """The serving function pinned to the signed iris package."""
    env.publish(iris_files())
    return env


def named(lines: list[dict], name: str) -> list[dict]:
    """The EMF documents that carry metric `name`."""
    return [m for m in metrics(lines) if any(d["Name"] == name for d in m["_aws"]["CloudWatchMetrics"][0]["Metrics"])]


def values(lines: list[dict], name: str, **dimensions: str) -> list[float]:
    """Every value of metric `name` in documents with these dimension values, in order."""
    found = named(lines, name)
    return [v for m in found if all(m.get(k) == v for k, v in dimensions.items()) for v in m[name]]


def serve_traffic(out, requests: int, rows: int, *, seed: int = 99, context=None, **poison) -> list[dict]:
    """`requests` invocations of `rows` distinct iris rows each; the EMF documents and log lines they wrote."""
    batch = samples.iris_batch(requests * rows, seed, **poison).to_pylist()
    for i in range(requests):
        assert len(invoke({"rows": batch[i * rows : (i + 1) * rows]}, context)["predictions"]) == rows
    return out()


def test_shifted_traffic_raises_max_feature_drift_per_function_version(iris, out):
    lines = serve_traffic(out, 4, 100, shift=2.0)  # two windows of the default 200 rows
    summaries = named(lines, "MaxFeatureDrift")
    assert len(summaries) == 2  # emitted by the two invocations that filled a window
    for summary in summaries:
        [definition] = summary["_aws"]["CloudWatchMetrics"]
        assert definition["Namespace"] == "mlvault"
        assert definition["Dimensions"] == [
            ["Stage"],
            ["Stage", "ModelVersion"],
            ["Stage", "Model"],  # the model's own drift alarm watches [Stage, Model]
            ["Stage", "Model", "ModelVersion"],
        ]
        assert summary["Model"] == "iris"
        assert definition["Metrics"] == [
            {"Name": "Predictions", "Unit": "Count"},
            {"Name": "MaxFeatureDrift", "Unit": "None"},
            {"Name": "PredictionDrift", "Unit": "None"},
        ]
        assert (summary["Stage"], summary["ModelVersion"]) == ("test", "7")
        assert (summary["model_id"], summary["model_digest"]) == (MODEL_ID, sha256(iris_model()))
    drift = values(lines, "MaxFeatureDrift", Stage="test", ModelVersion="7")
    assert len(drift) == 2
    assert all(v > 0.2 for v in drift), drift
    assert values(lines, "Predictions", ModelVersion="7") == [100.0] * 4  # every invocation
    assert len(values(lines, "PredictionDrift", ModelVersion="7")) == 2

    per_feature = named(lines, "FeatureDrift")
    assert sorted(m["Feature"] for m in per_feature) == sorted(FEATURES * 2)  # one metric per feature
    for m in per_feature:
        assert m["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [
            ["Stage", "ModelVersion", "Feature"],
            ["Stage", "Model", "ModelVersion", "Feature"],
        ]
        assert (m["Stage"], m["ModelVersion"]) == ("test", "7")
    sepal = values(lines, "FeatureDrift", Feature="sepal_length")
    assert sepal == drift  # the shifted feature is the max
    for name in FEATURES[1:]:
        assert all(v < 0.2 for v in values(lines, "FeatureDrift", Feature=name))
    logged = [line for line in lines if line.get("message") == "drift window"]
    assert [line["max_feature"] for line in logged] == ["sepal_length", "sepal_length"]


def test_clean_traffic_stays_under_the_alarm_threshold(iris, out):
    lines = serve_traffic(out, 4, 100)
    drift = values(lines, "MaxFeatureDrift", ModelVersion="7")
    assert len(drift) == 2
    assert all(v < 0.2 for v in drift), drift
    assert all(v < 0.2 for v in values(lines, "PredictionDrift"))


def test_each_function_version_has_its_own_metrics(iris, out):
    class NextVersion(ServeContext):
        function_version = "8"

    lines = serve_traffic(out, 1, 200, context=NextVersion(), shift=2.0)
    assert values(lines, "MaxFeatureDrift", ModelVersion="8")[0] > 0.2
    assert values(lines, "MaxFeatureDrift", ModelVersion="7") == []
    assert {m["ModelVersion"] for m in metrics(lines)} == {"8"}


def test_the_window_size_comes_from_the_settings(iris, out, monkeypatch):
    monkeypatch.setenv("MLVAULT_DRIFT_WINDOW_ROWS", "50")
    clear_caches()
    lines = serve_traffic(out, 1, 120, shift=2.0)  # two full windows of 50; 20 rows held for the next
    [summary] = named(lines, "MaxFeatureDrift")
    assert len(summary["MaxFeatureDrift"]) == 2
    assert len(values(lines, "FeatureDrift", Feature="sepal_length")) == 2
    lines = serve_traffic(out, 1, 30, seed=5, shift=2.0)  # 20 + 30: the third window
    assert len(values(lines, "MaxFeatureDrift")) == 1


def test_a_window_size_under_the_minimum_is_a_deployment_error(iris, out, monkeypatch):
    monkeypatch.setenv("MLVAULT_DRIFT_WINDOW_ROWS", "19")
    clear_caches()
    with pytest.raises(SettingsError, match="MLVAULT_DRIFT_WINDOW_ROWS: expected at least 20 rows, got 19"):
        invoke()
    assert metrics(out()) == []


def test_a_refused_request_feeds_no_window(iris, out, monkeypatch):
    monkeypatch.setenv("MLVAULT_DRIFT_WINDOW_ROWS", "20")
    clear_caches()
    rows = samples.iris_batch(20, 3).to_pylist()
    out()
    assert invoke({"rows": [*rows[:19], {**rows[19], "site": 3}]})["error"]["code"] == "NOT_A_STRING"
    assert [m["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Name"] for m in metrics(out())] == ["ClientErrors"]
    lines = serve_traffic(out, 1, 19)
    assert named(lines, "MaxFeatureDrift") == []  # 19 rows held: the refused request counted none
    lines = serve_traffic(out, 1, 1, seed=4)
    assert len(values(lines, "MaxFeatureDrift")) == 1  # the 20th row fills the window


def test_a_signed_package_with_a_malformed_baseline_is_refused(env, out):
    document = json.loads(iris_files()["drift.json"])
    document["features"][0]["counts"][0] += 1  # no longer sums to the rows
    env.publish({**iris_files(), "drift.json": json_bytes(document)})
    error = refused(out, "MODEL_MALFORMED")
    assert "drift reference" in error.detail


def test_a_changed_baseline_is_not_the_signed_package(iris, out):
    document = json.loads(iris_files()["drift.json"])
    counts = document["features"][0]["counts"]
    counts[0], counts[1] = counts[0] + 1, counts[1] - 1  # still well formed, but not what was signed
    data = pack({**iris_files(), "drift.json": json_bytes(document)})
    iris.pin(MLVAULT_MODEL_VERSION=iris.put(MODEL_KEY, data), MLVAULT_MODEL_DIGEST=sha256(data))
    error = refused(out, "MODEL_DIGEST_MISMATCH")
    assert "'drift.json'" in error.detail
