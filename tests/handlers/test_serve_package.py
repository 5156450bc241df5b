"""The serve handler and the shared attestation on moto, for what is new in a model package: the tar is pinned by
digest and extracted safely into a private folder, the OpenSSF signature covers the directory file by file, and a
package of any framework is served by onnxruntime through the same path (the built-in format, a scikit-learn GBM
exported with skl2onnx, int64/bool inputs and an int64 label). Every refusal keeps its stable code."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from mlvault import model_package
from mlvault.attestation.openssf import kms_public_key_pem, sign_model
from mlvault.attestation.pinned import attest_registered
from mlvault.config import ServeSettings
from mlvault.errors import RolloutRefused, ServingFailed
from mlvault.serving.loader import AttestationError
from mlvault.signing.keys import KmsSigner
from mlvault_tools import samples
from tests.handlers.serve_world import (
    BUCKET,
    FILES_A,
    FILES_B,
    MODEL_A,
    MODEL_ID,
    MODEL_KEY,
    SETOSA,
    SIGNATURE_KEY,
    VIRGINICA,
    clear_caches,
    files_digest,
    invoke,
    metrics,
    refused,
    sha256,
    write_served_model,
)
from tests.handlers.serve_world import env as env  # the fixtures
from tests.handlers.serve_world import out as out
from tests.handlers.serving_packages import IRIS_NUMERIC, json_bytes, sign_files, sklearn_files, tar_of, typed_files

LEGACY_MODEL = json_bytes({"format": "mlvault.model/v1", "type": "softmax-regression", "classes": ["a", "b"]})


def members(files: dict[str, bytes]) -> list[tuple[str, None, bytes]]:
    return [(name, None, data) for name, data in files.items()]


def pin_tar(env, tar: bytes, signed: dict[str, bytes] | None = None) -> None:
    """Pin a hand-made tar, signed over `signed` (default: package A's files)."""
    env.publish(signed or FILES_A, tar=tar, signed=signed or FILES_A)


# --- the tar --------------------------------------------------------------------------------------------------


def test_a_tampered_tar_is_refused_by_its_pinned_digest(env, out):
    tampered = bytearray(MODEL_A)
    tampered[-2000] ^= 1
    env.pin(MLVAULT_MODEL_VERSION=env.put(MODEL_KEY, bytes(tampered)))  # the pinned digest is A's
    error = refused(out, "MODEL_DIGEST_MISMATCH")
    assert sha256(MODEL_A) in error.detail


def test_a_tar_with_a_broken_header_pinned_with_its_own_digest_is_malformed(env, out):
    broken = bytearray(MODEL_A)
    broken[100] ^= 0xFF  # inside the first header: its checksum no longer holds
    pin_tar(env, bytes(broken))
    error = refused(out, "MODEL_MALFORMED")
    assert "not a model package" in error.detail


@pytest.mark.parametrize(
    ("tar", "reason", "detail"),
    [
        (  # a wrong file: weights.bin instead of drift.json
            lambda: tar_of([*members(FILES_A)[:2], ("weights.bin", None, b"\x00" * 8)]),
            "MODEL_FILE_EXTRA",
            "'weights.bin'",
        ),
        (lambda: tar_of([*members(FILES_A), ("notes.txt", None, b"hi")]), "MODEL_FILE_EXTRA", "'notes.txt'"),
        (lambda: tar_of([*members(FILES_A), ("drift.json", None, b"{}")]), "MODEL_FILE_EXTRA", "repeated"),
        (lambda: tar_of(members(FILES_A)[:2]), "MODEL_FILE_MISSING", "drift.json"),
        (lambda: tar_of([("../model.onnx", None, FILES_A["model.onnx"])]), "MODEL_FILE_EXTRA", "'../model.onnx'"),
        (
            lambda: tar_of([*members(FILES_A)[:2], ("drift.json", tarfile.SYMTYPE, b"/etc/passwd")]),
            "MODEL_FILE_UNSUPPORTED",
            "not a regular file",
        ),
        (
            lambda: tar_of([*members(FILES_A)[:2], ("drift.json", tarfile.LNKTYPE, b"model.onnx")]),
            "MODEL_FILE_UNSUPPORTED",
            "not a regular file",
        ),
        (lambda: tar_of([("model", tarfile.DIRTYPE, b""), *members(FILES_A)]), "MODEL_FILE_UNSUPPORTED", "'model'"),
        (lambda: b"not a tar at all" * 100, "MODEL_MALFORMED", "not a tar"),
    ],
    ids=[
        "wrong-file",
        "extra-file",
        "repeated-file",
        "missing-file",
        "traversal",
        "symlink",
        "hardlink",
        "dir",
        "junk",
    ],
)
def test_a_package_that_is_not_exactly_the_signed_files_is_refused(env, out, tar, reason, detail):
    pin_tar(env, tar())
    error = refused(out, reason)
    assert detail in error.detail


def test_nothing_is_written_outside_the_private_folder(env, tmp_path):
    pin_tar(env, tar_of([("../escaped.onnx", None, b"x"), *members(FILES_A)]))
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    with pytest.raises(AttestationError, match="MODEL_FILE_EXTRA"):
        env.loader(tmp_dir=str(scratch)).load(ServeSettings.from_env())
    assert list(scratch.iterdir()) == []  # the private folder is gone, the tar with it
    assert not (tmp_path / "escaped.onnx").exists()


def test_a_package_over_the_cap_is_refused_before_it_is_extracted(env):
    loader = env.loader(max_model_bytes=len(MODEL_A) - 1)
    with pytest.raises(AttestationError, match="MODEL_TOO_LARGE"):
        loader.load(ServeSettings.from_env())


# --- the signature over the directory ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("signed", "reason", "detail"),
    [
        (FILES_B, "MODEL_DIGEST_MISMATCH", "'model.onnx'"),  # another model's directory
        ({**FILES_A, "notes.txt": b"hi"}, "MODEL_FILE_MISSING", "'notes.txt'"),  # a directory with one more file
        ({k: v for k, v in FILES_A.items() if k != "drift.json"}, "MODEL_FILE_EXTRA", "'drift.json'"),  # one less
        ({**FILES_A, "descriptor.json": FILES_B["descriptor.json"] + b" "}, "MODEL_DIGEST_MISMATCH", "descriptor"),
    ],
    ids=["another-model", "one-more-file", "one-less-file", "another-descriptor"],
)
def test_a_signature_over_another_directory_is_refused(env, out, signed, reason, detail):
    signature = env.signature(signed, package_sha256=sha256(MODEL_A))  # even naming the pinned package
    env.pin(MLVAULT_SIGNATURE_VERSION=env.put(SIGNATURE_KEY, signature))
    error = refused(out, reason)
    assert detail in error.detail


@pytest.mark.parametrize("package", [None, "0" * 64])
def test_a_signature_of_the_same_files_in_another_package_is_refused(env, out, package):
    """The signed statement names the package tar (package_sha256): the pin must be that very tar."""
    signature = env.signature(FILES_A, package_sha256=package) if package else env.signature(FILES_A)
    if package is None:  # no package digest signed at all
        signature = sign_files(env.kms, env.key_arn, FILES_A, model_id=MODEL_ID)
    env.pin(MLVAULT_SIGNATURE_VERSION=env.put(SIGNATURE_KEY, signature))
    error = refused(out, "MODEL_DIGEST_MISMATCH")
    assert f"the pinned package's is {sha256(MODEL_A)}" in error.detail


def test_the_signature_lists_one_resource_per_file(env):
    served = env.loader().load(ServeSettings.from_env())
    assert served.files == files_digest("a")
    assert set(served.files) == set(model_package.FILES)


def test_a_model_of_the_single_file_format_is_refused_with_its_own_code(env, out, tmp_path):
    """A model signed before packages (one JSON file, one resource "."): refused as such, not as malformed."""
    path = tmp_path / "model.json"
    path.write_bytes(LEGACY_MODEL)
    signer = KmsSigner(env.kms, env.key_arn, env.key_arn)
    signature = sign_model(
        path,
        signer,
        statement_extra={"mlvault": {"model_id": MODEL_ID}},
        public_key_pem=kms_public_key_pem(env.kms, env.key_arn),
    )
    env.pin(
        MLVAULT_MODEL_VERSION=env.put(MODEL_KEY, LEGACY_MODEL),
        MLVAULT_MODEL_DIGEST=sha256(LEGACY_MODEL),
        MLVAULT_SIGNATURE_VERSION=env.put(SIGNATURE_KEY, signature),
    )
    error = refused(out, "MODEL_FORMAT_UNSUPPORTED")
    assert "single-file model" in error.detail


def test_junk_signed_as_one_file_by_another_key_is_only_malformed(env, out, tmp_path):
    path = tmp_path / "model.json"
    path.write_bytes(LEGACY_MODEL)
    other = KmsSigner(env.kms, env.other_key_arn, env.other_key_arn)
    signature = sign_model(path, other, public_key_pem=kms_public_key_pem(env.kms, env.other_key_arn))
    env.pin(
        MLVAULT_MODEL_VERSION=env.put(MODEL_KEY, LEGACY_MODEL),
        MLVAULT_MODEL_DIGEST=sha256(LEGACY_MODEL),
        MLVAULT_SIGNATURE_VERSION=env.put(SIGNATURE_KEY, signature),
    )
    refused(out, "MODEL_MALFORMED")


# --- signed, but not a servable model ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "detail"),
    [
        ({"descriptor.json": b"{}"}, "descriptor.json"),
        ({"model.onnx": typed_files()["model.onnx"]}, "does not fit its descriptor"),
        ({"drift.json": typed_files()["drift.json"]}, "drift.json"),
        ({"drift.json": b"[1, 2"}, "drift.json"),
    ],
    ids=[
        "descriptor-invalid",
        "graph-not-the-descriptor",
        "drift-of-other-columns",
        "drift-junk",
    ],
)
def test_a_signed_package_that_does_not_load_is_malformed(env, out, change, detail):
    env.publish({**FILES_A, **change})
    error = refused(out, "MODEL_MALFORMED")
    assert detail in error.detail


# --- the function's own model (trust/served-model.json) ---------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "detail"),
    [("model", "credit", "describes model 'credit' of dataset 'iris'"), ("dataset", "loans", "of dataset 'loans'")],
)
def test_a_signed_descriptor_of_another_model_is_refused(env, out, field, value, detail):
    env.publish({**FILES_A, "descriptor.json": json_bytes({**json.loads(FILES_A["descriptor.json"]), field: value})})
    error = refused(out, "MODEL_NAME_MISMATCH")
    assert detail in error.detail


def test_a_pin_of_another_model_is_refused_before_anything_is_read(env, out):
    env.pin(MLVAULT_MODEL_ID="credit/1")  # e.g. a version published with another model's pins
    error = refused(out, "MODEL_NAME_MISMATCH")  # counted with Model = iris: this function's alarm fires
    assert "this function serves model 'iris' only" in error.detail


def test_a_version_that_pins_no_model_is_refused_not_failed(env, out, monkeypatch):
    """The serving function's first version (CloudFormation's, before any deployment) pins nothing: a refusal with a
    code, counted for this model's alarm, never a function error (which would count as a serving error)."""
    for name in ("MLVAULT_MODEL_ID", "MLVAULT_MODEL_KEY", "MLVAULT_MODEL_VERSION", "MLVAULT_MODEL_DIGEST"):
        monkeypatch.delenv(name)
    for name in ("MLVAULT_SIGNATURE_KEY", "MLVAULT_SIGNATURE_VERSION", "MLVAULT_MODEL_BUCKET"):
        monkeypatch.delenv(name)
    clear_caches()
    error = refused(out, "MODEL_NOT_PINNED")
    assert "pins no model" in error.detail


@pytest.mark.parametrize(
    ("document", "reason", "detail"),
    [
        (None, "ANCHORS_MISSING", "no trust/served-model.json"),
        ("[]", "ANCHORS_MALFORMED", "expected an object"),
        ({"stage": "test", "model": "iris"}, "ANCHORS_MALFORMED", "expected exactly the fields"),
        ({"stage": "test", "model": "Iris Model", "dataset": "iris"}, "ANCHORS_MALFORMED", "expected a model name"),
        ({"stage": "prod", "model": "iris", "dataset": "iris"}, "ANCHORS_WRONG_STAGE", "of stage 'prod'"),
    ],
)
def test_the_served_model_facts_fail_closed(env, out, document, reason, detail):
    path = env.task_root / "trust" / "served-model.json"
    if document is None:
        path.unlink()
    else:
        write_served_model(env.task_root, document)
    clear_caches()
    error = refused(out, reason)  # still counted for this model's alarm: Model is the pin's name
    assert detail in error.detail


# --- any framework, one path ---------------------------------------------------------------------------------


def test_the_built_in_format_predicts_through_onnxruntime(env):
    rows = [SETOSA, VIRGINICA, {"petal_length": None, "site": None}, {"petal_length": 6.0, "site": "east"}]
    answer = invoke({"rows": rows})
    assert answer["predictions"] == ["setosa", "virginica", "setosa", "virginica"]


def test_a_scikit_learn_package_is_served_like_the_built_in_one(env, out):
    import numpy as np
    from sklearn.ensemble import GradientBoostingClassifier

    train = samples.iris_batch(600, 1).to_pylist()
    files = sklearn_files(train)
    data = env.publish(files)
    rows = samples.iris_batch(300, 2).to_pylist()
    answer = invoke({"rows": rows})
    assert answer["model"] == {"id": MODEL_ID, "digest": sha256(data), "version": answer["model"]["version"]}
    # the same predictions as the scikit-learn model the package was exported from
    x = [[row[c] for c in IRIS_NUMERIC] for row in train]
    expected = GradientBoostingClassifier(n_estimators=30, max_depth=2, random_state=0).fit(
        x, [row["species"] for row in train]
    )
    want = expected.predict(np.array([[row[c] for c in IRIS_NUMERIC] for row in rows], dtype=np.float32))
    assert answer["predictions"] == [str(p) for p in want]
    assert {"setosa", "versicolor", "virginica"} >= set(answer["predictions"])
    lines = metrics(out())
    assert len([m for m in lines if "MaxFeatureDrift" in m]) == 1  # 300 rows: one window of 200
    assert {m["Feature"] for m in lines if "FeatureDrift" in m} == set(IRIS_NUMERIC)  # drift.json's columns


def test_a_scikit_learn_package_validates_requests_against_its_descriptor(env):
    env.publish(sklearn_files(samples.iris_batch(300, 1).to_pylist()))
    row = samples.iris_batch(1, 2).to_pylist()[0]
    del row["petal_width"]
    error = invoke({"rows": [row]})["error"]
    assert (error["code"], error["field"], error["kind"]) == ("MISSING_FEATURE", "rows[0].petal_width", "client")
    assert invoke({"rows": [{c: 1.0 for c in IRIS_NUMERIC}]})["predictions"]  # site is not an input: not needed


@pytest.mark.parametrize("int64_label", [False, True])
def test_int64_and_bool_inputs_and_an_int64_label(env, int64_label):
    env.publish(typed_files(int64_label=int64_label))
    rows = [{"count": 1, "flag": False}, {"count": 9, "flag": False}, {"count": 3.0, "flag": True}]
    rows.append({"count": True, "flag": False})  # true counts as 1
    expected = ["no", "yes", "yes", "no"] if not int64_label else ["0", "1", "1", "0"]
    assert invoke({"rows": rows})["predictions"] == expected


@pytest.mark.parametrize(
    ("value", "code", "message"),
    [
        ({"count": 1.5, "flag": True}, "NOT_AN_INTEGER", "rows[0].count: expected an integer within int64, got 1.5"),
        ({"count": 2**63, "flag": True}, "NOT_AN_INTEGER", "within int64"),
        ({"count": "3", "flag": True}, "NOT_A_NUMBER", "rows[0].count: expected an integer, got '3'"),
        ({"count": float("inf"), "flag": True}, "NOT_FINITE", "got inf"),
        ({"count": None, "flag": True}, "NULL_NOT_ALLOWED", "rows[0].count: expected a value (int64"),
        ({"count": 1, "flag": None}, "NULL_NOT_ALLOWED", "rows[0].flag"),
        ({"count": 1, "flag": 1}, "NOT_A_BOOLEAN", "rows[0].flag: expected true or false, got 1"),
        ({"count": 1, "flag": "true"}, "NOT_A_BOOLEAN", "got 'true'"),
        ({"flag": True}, "MISSING_FEATURE", "rows[0]: missing feature 'count'"),
    ],
)
def test_typed_inputs_are_validated_with_codes(env, value, code, message):
    env.publish(typed_files())
    error = invoke({"rows": [{"count": 2, "flag": False}, value][1:]})["error"]
    assert (error["code"], error["kind"]) == (code, "client")
    assert message in error["message"]


def test_the_first_offending_value_is_named_row_by_row(env):
    env.publish(typed_files())
    rows = [{"count": 1, "flag": False}, {"count": 1, "flag": "no"}, {"count": "x", "flag": False}]
    error = invoke({"rows": rows})["error"]
    assert (error["code"], error["field"]) == ("NOT_A_BOOLEAN", "rows[1].flag")


def test_a_model_that_answers_outside_its_classes_fails_the_function(env, out):
    env.publish(typed_files(classes=("maybe", "yes")))  # the graph also says "no"
    out()
    with pytest.raises(ServingFailed, match="MODEL_OUTPUT_INVALID"):
        invoke({"rows": [{"count": 1, "flag": False}]})  # a function error: Lambda's Errors, the rollback alarm
    lines = out()
    assert not [m for m in metrics(lines) if "ClientErrors" in m or "ModelAttestationFailed" in m]


# --- the shared attestation: deploy, rollback and verify-model -------------------------------------------------


def registered(env, *, files_signed: dict[str, bytes] | None = None, **record: object) -> dict:
    """A signed registry model naming package A, as ModelRegistry.model returns it."""
    signature = env.signature(files_signed or FILES_A)
    extra_version = env.put(SIGNATURE_KEY, signature)
    return {
        "model_id": MODEL_ID,
        "status": "SIGNED",
        "record_intact": True,
        "record_sha256": "r" * 64,
        "signing_key_arn": env.key_arn,
        "signature_key": SIGNATURE_KEY,
        "signature_version": extra_version,
        "record": {
            "artifact": {
                "bucket": BUCKET,
                "key": MODEL_KEY,
                "version_id": env.versions["a"],
                "sha256": sha256(MODEL_A),
                "bytes": len(MODEL_A),
                **record,
            }
        },
    }


def signed_record(env, model: dict) -> dict:
    """Sign package A with the record digest of `model`, as the sign step does."""
    signature = env.signature(FILES_A, record_sha256=model["record_sha256"])
    return {**model, "signature_version": env.put(SIGNATURE_KEY, signature)}


def model_signing_verify(folder: Path) -> subprocess.CompletedProcess[str]:
    """The independent verifier's CLI (`model_signing verify key DIR --signature SIG --public_key PEM`), offline."""
    command = [sys.executable, "-m", "model_signing", "verify", "key", str(folder / "model")]
    command += ["--signature", str(folder / "model.sig"), "--public_key", str(folder / "signing-key.pem")]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


def test_verify_model_leaves_a_directory_model_signing_verifies(env, tmp_path):
    model = signed_record(env, registered(env, files=files_digest("a")))
    out_dir = tmp_path / "check"
    out_dir.mkdir()
    attested = attest_registered(env.s3, env.kms, model, env.signing_key(), folder=out_dir)
    assert attested.path == out_dir / "model"
    assert sorted(p.name for p in (out_dir / "model").iterdir()) == sorted(model_package.FILES)
    for name in model_package.FILES:
        assert hashlib.sha256((out_dir / "model" / name).read_bytes()).hexdigest() == files_digest("a")[name]
    result = model_signing_verify(out_dir)
    assert result.returncode == 0, result.stdout + result.stderr
    (out_dir / "model" / "drift.json").write_bytes(b"{}")  # and the independent verifier sees a change
    result = model_signing_verify(out_dir)
    assert result.returncode != 0
    attest_registered(env.s3, env.kms, model, env.signing_key(), folder=out_dir)  # a second check replaces it


def test_verify_model_refuses_to_mix_a_model_into_a_folder_of_other_files(env, tmp_path):
    model = signed_record(env, registered(env))
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "mine.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="other files"):
        attest_registered(env.s3, env.kms, model, env.signing_key(), folder=tmp_path)
    assert (tmp_path / "model" / "mine.txt").read_text() == "keep me"


def test_deploy_and_rollback_refuse_a_record_whose_files_are_not_the_signed_ones(env):
    listed = {**files_digest("a"), "model.onnx": files_digest("b")["model.onnx"]}
    model = signed_record(env, registered(env, files=listed))
    with pytest.raises(RolloutRefused, match="MODEL_DIGEST_MISMATCH"):
        attest_registered(env.s3, env.kms, model, env.signing_key())


@pytest.mark.parametrize(
    ("tar", "reason"),
    [
        (lambda: tar_of([*members(FILES_A), ("notes.txt", None, b"hi")]), "MODEL_FILE_EXTRA"),
        (lambda: tar_of([*members(FILES_A)[:2], ("drift.json", tarfile.SYMTYPE, b"x")]), "MODEL_FILE_UNSUPPORTED"),
        (lambda: LEGACY_MODEL, "MODEL_MALFORMED"),  # not signed as a single file here: only malformed
    ],
)
def test_deploy_and_rollback_refuse_what_serving_refuses(env, tar, reason):
    data = tar()
    model = signed_record(env, registered(env))
    artifact = model["record"]["artifact"]
    artifact.update(version_id=env.put(MODEL_KEY, data), sha256=sha256(data), bytes=len(data))
    with pytest.raises(RolloutRefused) as caught:
        attest_registered(env.s3, env.kms, model, env.signing_key())
    assert caught.value.reason == reason


def test_deploy_refuses_a_signature_that_does_not_cover_the_record(env):
    model = registered(env)  # signed without the record's digest
    with pytest.raises(RolloutRefused, match="RECORD_TAMPERED"):
        attest_registered(env.s3, env.kms, model, env.signing_key())


def test_a_member_larger_than_announced_cannot_grow_the_folder(env, tmp_path):
    """A tar whose member claims more bytes than the package holds is refused at the tar's own bounds."""
    header = tarfile.TarInfo("model.onnx")
    header.size = 10 * len(MODEL_A)
    buffer = io.BytesIO()
    buffer.write(header.tobuf(format=tarfile.PAX_FORMAT))
    buffer.write(b"\x00" * 512)
    pin_tar(env, buffer.getvalue())
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    with pytest.raises(AttestationError) as caught:
        env.loader(tmp_dir=str(scratch)).load(ServeSettings.from_env())
    assert caught.value.reason in ("MODEL_MALFORMED", "MODEL_TOO_LARGE")
    assert list(Path(scratch).iterdir()) == []
