"""Model signatures in the OpenSSF model-signing format (mlvault.attestation.openssf).

The independent verifier is the real `model_signing` package (pinned 1.1.1), through its Python API and its CLI:
it must accept what we sign, offline, with the exported public key. Each attack (one changed byte, an extra or a
missing file, another key, a tampered bundle) is refused by our verifier with its exact reason code AND by
model_signing. Our verifier must not import model_signing (the serving Lambda stays lean).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import boto3
import pytest
from cryptography.exceptions import InvalidSignature
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from model_signing import signing as ms_signing
from model_signing import verifying as ms_verifying
from moto import mock_aws

from mlvault.attestation import openssf as attest
from mlvault.attestation.openssf import (
    BUNDLE_MEDIA_TYPE,
    MAX_SIGNED_MESSAGE,
    PREDICATE_TYPE,
    STATEMENT_TYPE,
    ModelReason,
    ModelVerificationError,
    kms_public_key_pem,
    sign_model,
    signed_message_size,
    verify_model,
)
from mlvault.signing.dsse import PAYLOAD_TYPE, pae
from mlvault.signing.keys import KmsSigner, private_pem
from mlvault_tools import testkeys

ROOT = Path(__file__).resolve().parents[2]
KEY_ID = "model-signing-p256"
SIGNER = testkeys.signer(KEY_ID)
PUBLIC_PEM = SIGNER.public_pem().encode()
OTHER = testkeys.signer("model-signing-other-p256")
WEIGHTS = bytes(range(256)) * 6 * 1024  # 1.5 MiB: more than one 1 MiB hashing chunk
FILES = {
    "weights.bin": WEIGHTS,
    "config.json": b'{"layers": 2, "hidden": 8}',
    "tokenizer/vocab.txt": b"[PAD]\n[UNK]\nhello\n",
    "a-b.txt": b"sorts after tokenizer/ by path components, not by string",
}


def make_model(directory: Path) -> Path:
    for name, body in FILES.items():
        (directory / name).parent.mkdir(parents=True, exist_ok=True)
        (directory / name).write_bytes(body)
    (directory / ".gitignore").write_bytes(b"*.pyc\n")  # not signed, by either signer (model_signing's default)
    return directory


@pytest.fixture
def model(tmp_path: Path) -> Path:
    return make_model(tmp_path / "tiny-model")


def standard_verify(model_path: Path, signature: bytes, public_pem: bytes, workdir: Path) -> None:
    """The independent verifier, model_signing's Python API (the signature and key live outside the model)."""
    (workdir / "model.sig").write_bytes(signature)
    (workdir / "key.pem").write_bytes(public_pem)
    ms_verifying.Config().use_elliptic_key_verifier(public_key=workdir / "key.pem").verify(
        model_path, workdir / "model.sig"
    )


def standard_refusal(model_path: Path, signature: bytes, public_pem: bytes, workdir: Path) -> str:
    with pytest.raises((ValueError, InvalidSignature)) as refused:
        standard_verify(model_path, signature, public_pem, workdir)
    return str(refused.value)


def refusal(model_path: Path, signature: bytes, public_pem: bytes = PUBLIC_PEM) -> ModelVerificationError:
    with pytest.raises(ModelVerificationError) as refused:
        verify_model(model_path, signature, public_pem)
    return refused.value


def cli_verify(model_path: Path, signature_path: Path, key_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "model_signing",
            "verify",
            "key",
            str(model_path),
            "--signature",
            str(signature_path),
            "--public_key",
            str(key_path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def bundle_of(signature: bytes) -> dict:
    return json.loads(signature)


def statement_of(signature: bytes) -> dict:
    return json.loads(base64.b64decode(bundle_of(signature)["dsseEnvelope"]["payload"]))


def signed_bundle(statement: dict, template: bytes) -> bytes:
    """The bundle `template` carrying another statement, signed with the trusted key: for statements that
    sign_model never writes."""
    payload = json.dumps(statement, separators=(",", ":")).encode()
    bundle = bundle_of(template)
    bundle["dsseEnvelope"]["payload"] = base64.b64encode(payload).decode()
    bundle["dsseEnvelope"]["signatures"][0]["sig"] = base64.b64encode(SIGNER.sign(pae(PAYLOAD_TYPE, payload))).decode()
    return json.dumps(bundle, separators=(",", ":")).encode()


# ------------------------------------------------------------------------------------------------ it verifies


def test_model_signing_accepts_our_signature(model, tmp_path):
    signature = sign_model(model, SIGNER)

    standard_verify(model, signature, PUBLIC_PEM, tmp_path)


def test_model_signing_cli_accepts_our_signature_offline(model, tmp_path):
    (tmp_path / "tiny-model.sig").write_bytes(sign_model(model, SIGNER))
    (tmp_path / "key.pem").write_bytes(PUBLIC_PEM)

    accepted = cli_verify(model, tmp_path / "tiny-model.sig", tmp_path / "key.pem")
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr
    assert "Verification succeeded" in accepted.stdout

    (model / "weights.bin").write_bytes(WEIGHTS[:-1] + b"\x00")
    refused = cli_verify(model, tmp_path / "tiny-model.sig", tmp_path / "key.pem")
    assert refused.returncode != 0
    assert "Hash mismatch for 'weights.bin'" in refused.stdout + refused.stderr


def test_our_verifier_accepts_and_returns_the_signed_digests(model):
    signature = sign_model(model, SIGNER, statement_extra={"mlvault": {"training_manifest": "sha256:" + "a" * 64}})

    verified = verify_model(model, signature, PUBLIC_PEM)

    assert verified.digests == {name: hashlib.sha256(body).hexdigest() for name, body in FILES.items()}
    assert list(verified.digests) == ["a-b.txt", "config.json", "tokenizer/vocab.txt", "weights.bin"]
    assert verified.model_name == "tiny-model"
    assert (
        verified.root_digest
        == hashlib.sha256(b"".join(bytes.fromhex(d) for d in verified.digests.values())).hexdigest()
    )
    assert verified.extra == {"mlvault": {"training_manifest": "sha256:" + "a" * 64}}
    assert verified.keyid_hint == KEY_ID
    assert verified.statement == statement_of(signature)


def test_the_format_is_what_model_signing_sign_key_writes(model, tmp_path):
    """Sign the same model with model_signing's own `sign key` signer: the same bundle, apart from the keyid hint
    (theirs is empty) and the order of ignore_paths (theirs is a set's order). Our verifier accepts theirs too."""
    (tmp_path / "private.pem").write_bytes(private_pem(testkeys.private_key(KEY_ID)))
    ms_signing.Config().use_elliptic_key_signer(private_key=tmp_path / "private.pem").sign(model, tmp_path / "ref.sig")
    theirs = (tmp_path / "ref.sig").read_bytes()
    ours = sign_model(model, SIGNER)

    ours_bundle, theirs_bundle = bundle_of(ours), bundle_of(theirs)
    assert ours_bundle["mediaType"] == theirs_bundle["mediaType"] == BUNDLE_MEDIA_TYPE
    assert ours_bundle["verificationMaterial"] == theirs_bundle["verificationMaterial"]
    assert ours_bundle["verificationMaterial"]["publicKey"]["hint"] == hashlib.sha256(PUBLIC_PEM).hexdigest()
    assert ours_bundle["dsseEnvelope"]["payloadType"] == theirs_bundle["dsseEnvelope"]["payloadType"] == PAYLOAD_TYPE
    assert [s["keyid"] for s in theirs_bundle["dsseEnvelope"]["signatures"]] == [""]
    assert [s["keyid"] for s in ours_bundle["dsseEnvelope"]["signatures"]] == [KEY_ID]

    ours_statement, theirs_statement = statement_of(ours), statement_of(theirs)
    for statement in (ours_statement, theirs_statement):
        statement["predicate"]["serialization"]["ignore_paths"].sort()
    assert ours_statement == theirs_statement
    assert ours_statement["_type"] == STATEMENT_TYPE
    assert ours_statement["predicateType"] == PREDICATE_TYPE
    assert ours_statement["predicate"]["serialization"] == {
        "method": "files",
        "hash_type": "sha256",
        "allow_symlinks": False,
        "ignore_paths": [".git", ".gitattributes", ".github", ".gitignore"],
    }
    assert ours_statement["predicate"]["resources"][0] == {
        "name": "a-b.txt",
        "algorithm": "sha256",
        "digest": hashlib.sha256(FILES["a-b.txt"]).hexdigest(),
    }

    assert verify_model(model, theirs, PUBLIC_PEM).digests == verify_model(model, ours, PUBLIC_PEM).digests


def test_a_single_file_model(model, tmp_path):
    weights = model / "weights.bin"
    signature = sign_model(weights, SIGNER)

    assert statement_of(signature)["predicate"]["resources"] == [
        {"name": ".", "algorithm": "sha256", "digest": hashlib.sha256(WEIGHTS).hexdigest()}
    ]
    standard_verify(weights, signature, PUBLIC_PEM, tmp_path)
    assert verify_model(weights, signature, PUBLIC_PEM).digests == {".": hashlib.sha256(WEIGHTS).hexdigest()}
    assert refusal(model, signature).reason == ModelReason.MODEL_FILE_MISSING  # the directory is not that model


def test_the_signed_message_fits_kms_raw_signing(model):
    bundle = bundle_of(sign_model(model, SIGNER))
    signed = pae(PAYLOAD_TYPE, base64.b64decode(bundle["dsseEnvelope"]["payload"]))

    assert len(signed) == signed_message_size("tiny-model", sorted(FILES, key=lambda n: n.split("/"))) < 1024


# ------------------------------------------------------------------------------------------- attacks, refused


def change_one_byte(model: Path, signature: bytes) -> tuple[Path, bytes]:
    body = bytearray(WEIGHTS)
    body[1024 * 1024 + 7] ^= 0x01  # in the second hashing chunk
    (model / "weights.bin").write_bytes(bytes(body))
    return model, signature


def add_a_file(model: Path, signature: bytes) -> tuple[Path, bytes]:
    (model / "tokenizer" / "merges.txt").write_bytes(b"h e\n")
    return model, signature


def remove_a_file(model: Path, signature: bytes) -> tuple[Path, bytes]:
    (model / "config.json").unlink()
    return model, signature


def rename_a_file(model: Path, signature: bytes) -> tuple[Path, bytes]:
    (model / "config.json").rename(model / "config.yaml")
    return model, signature


def add_a_symlink(model: Path, signature: bytes) -> tuple[Path, bytes]:
    (model / "latest.bin").symlink_to(model / "weights.bin")
    return model, signature


def sign_with_another_key(model: Path, signature: bytes) -> tuple[Path, bytes]:
    return model, sign_model(model, OTHER)


def sign_with_another_key_naming_ours(model: Path, signature: bytes) -> tuple[Path, bytes]:
    bundle = bundle_of(sign_model(model, OTHER))
    bundle["verificationMaterial"]["publicKey"]["hint"] = hashlib.sha256(PUBLIC_PEM).hexdigest()
    return model, json.dumps(bundle).encode()


def swap_weights_and_their_digest(model: Path, signature: bytes) -> tuple[Path, bytes]:
    """The attack that matters: new weights, and the statement edited to list their digest."""
    bundle = bundle_of(signature)
    statement = statement_of(signature)
    evil = b"backdoored" + WEIGHTS[10:]
    (model / "weights.bin").write_bytes(evil)
    for resource in statement["predicate"]["resources"]:
        if resource["name"] == "weights.bin":
            resource["digest"] = hashlib.sha256(evil).hexdigest()
    digests = b"".join(bytes.fromhex(r["digest"]) for r in statement["predicate"]["resources"])
    statement["subject"][0]["digest"]["sha256"] = hashlib.sha256(digests).hexdigest()
    bundle["dsseEnvelope"]["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    return model, json.dumps(bundle).encode()


def flip_a_signature_bit(model: Path, signature: bytes) -> tuple[Path, bytes]:
    bundle = bundle_of(signature)
    sig = bytearray(base64.b64decode(bundle["dsseEnvelope"]["signatures"][0]["sig"]))
    sig[-1] ^= 0x01
    bundle["dsseEnvelope"]["signatures"][0]["sig"] = base64.b64encode(bytes(sig)).decode()
    return model, json.dumps(bundle).encode()


def name_another_key(model: Path, signature: bytes) -> tuple[Path, bytes]:
    bundle = bundle_of(signature)
    bundle["verificationMaterial"]["publicKey"]["hint"] = hashlib.sha256(OTHER.public_pem().encode()).hexdigest()
    return model, json.dumps(bundle).encode()


def change_the_media_type(model: Path, signature: bytes) -> tuple[Path, bytes]:
    bundle = bundle_of(signature)
    bundle["mediaType"] = "application/vnd.dev.sigstore.bundle.v0.2+json"
    return model, json.dumps(bundle).encode()


def change_the_payload_type(model: Path, signature: bytes) -> tuple[Path, bytes]:
    bundle = bundle_of(signature)
    bundle["dsseEnvelope"]["payloadType"] = "application/json"
    return model, json.dumps(bundle).encode()


def truncate_the_bundle(model: Path, signature: bytes) -> tuple[Path, bytes]:
    return model, signature[:-2]


ATTACKS: list[tuple[Callable[[Path, bytes], tuple[Path, bytes]], str]] = [
    (change_one_byte, ModelReason.MODEL_DIGEST_MISMATCH),
    (add_a_file, ModelReason.MODEL_FILE_EXTRA),
    (remove_a_file, ModelReason.MODEL_FILE_MISSING),
    (rename_a_file, ModelReason.MODEL_FILE_MISSING),
    (add_a_symlink, ModelReason.MODEL_FILE_UNSUPPORTED),
    (sign_with_another_key, ModelReason.MODEL_SIGNATURE_INVALID),
    (sign_with_another_key_naming_ours, ModelReason.MODEL_SIGNATURE_INVALID),
    (swap_weights_and_their_digest, ModelReason.MODEL_SIGNATURE_INVALID),
    (flip_a_signature_bit, ModelReason.MODEL_SIGNATURE_INVALID),
    (name_another_key, ModelReason.MALFORMED_MODEL_SIGNATURE),
    (change_the_media_type, ModelReason.MODEL_SIGNATURE_UNSUPPORTED),
    (change_the_payload_type, ModelReason.MALFORMED_MODEL_SIGNATURE),
    (truncate_the_bundle, ModelReason.MALFORMED_MODEL_SIGNATURE),
]


@pytest.mark.parametrize(("attack", "reason"), ATTACKS, ids=[attack.__name__ for attack, _ in ATTACKS])
def test_each_attack_is_refused_by_both_verifiers(model, tmp_path, attack, reason):
    signature = sign_model(model, SIGNER)
    verify_model(model, signature, PUBLIC_PEM)  # the baseline verifies: the refusal below is the attack's doing

    attacked_model, attacked_signature = attack(model, signature)

    error = refusal(attacked_model, attacked_signature)
    assert error.reason == reason, error.detail
    assert str(error) == f"{reason}: {error.detail}"
    standard_refusal(attacked_model, attacked_signature, PUBLIC_PEM, tmp_path)


def test_the_details_say_expected_and_got(model):
    signature = sign_model(model, SIGNER)
    change_one_byte(model, signature)

    detail = refusal(model, signature).detail

    expected = hashlib.sha256(WEIGHTS).hexdigest()
    got = hashlib.sha256((model / "weights.bin").read_bytes()).hexdigest()
    assert detail == f"'weights.bin': expected sha256 {expected}, got {got}"


def test_missing_and_extra_files_are_named(model):
    signature = sign_model(model, SIGNER)
    rename_a_file(model, signature)

    assert (
        refusal(model, signature).detail
        == "expected the 4 signed files, missing 'config.json'; not signed: 'config.yaml'"
    )
    (model / "config.yaml").rename(model / "config.json")
    add_a_file(model, signature)
    assert refusal(model, signature).detail == "expected only the 4 signed files, got unsigned 'tokenizer/merges.txt'"


def test_a_model_that_is_not_there(tmp_path):
    signature = sign_model(make_model(tmp_path / "m"), SIGNER)

    assert refusal(tmp_path / "gone", signature).reason == ModelReason.MODEL_FILE_MISSING


CRAFTED = {
    "inconsistent subject digest": (
        lambda s: s["subject"][0]["digest"].update(sha256="0" * 64),
        ModelReason.MALFORMED_MODEL_SIGNATURE,
    ),
    "v0.1 predicate": (
        lambda s: s.update(predicateType="https://model_signing/Digests/v0.1"),
        ModelReason.MODEL_SIGNATURE_UNSUPPORTED,
    ),
    "shard serialization": (
        lambda s: s["predicate"]["serialization"].update(method="shards", shard_size=1000000),
        ModelReason.MODEL_SIGNATURE_UNSUPPORTED,
    ),
    "symlinks allowed": (
        lambda s: s["predicate"]["serialization"].update(allow_symlinks=True),
        ModelReason.MODEL_SIGNATURE_UNSUPPORTED,
    ),
    "path outside the model": (
        lambda s: s["predicate"]["resources"][0].update(name="../a-b.txt"),
        ModelReason.MALFORMED_MODEL_SIGNATURE,
    ),
    "a file listed twice": (
        lambda s: s["predicate"]["resources"].append(dict(s["predicate"]["resources"][0])),
        ModelReason.MALFORMED_MODEL_SIGNATURE,
    ),
    "no resources": (lambda s: s["predicate"].update(resources=[]), ModelReason.MALFORMED_MODEL_SIGNATURE),
    "two subjects": (
        lambda s: s["subject"].append(dict(s["subject"][0])),
        ModelReason.MALFORMED_MODEL_SIGNATURE,
    ),
}


@pytest.mark.parametrize("case", CRAFTED, ids=list(CRAFTED))
def test_signed_statements_we_never_write_are_refused(model, case):
    """Signed with the trusted key, yet not a statement of this format: refused before any file is read."""
    change, reason = CRAFTED[case]
    signature = sign_model(model, SIGNER)
    statement = statement_of(signature)
    change(statement)
    if case != "inconsistent subject digest":  # keep the subject consistent: only the case's change is wrong
        digests = b"".join(bytes.fromhex(r["digest"]) for r in statement["predicate"]["resources"])
        statement["subject"][0]["digest"]["sha256"] = hashlib.sha256(digests).hexdigest()

    error = refusal(model.parent / "not-there", signed_bundle(statement, signature))

    assert error.reason == reason, error.detail


def test_the_keyid_is_an_unsigned_hint(model):
    bundle = bundle_of(sign_model(model, SIGNER))
    bundle["dsseEnvelope"]["signatures"][0]["keyid"] = "someone-else"

    verified = verify_model(model, json.dumps(bundle).encode(), PUBLIC_PEM)

    assert verified.keyid_hint == "someone-else"  # for logs only: trust comes from the given public key


def test_an_oversized_signature_is_refused_before_parsing(model):
    error = refusal(model, b" " * (attest.MAX_SIGNATURE_BYTES + 1))

    assert error.reason == ModelReason.MODEL_SIGNATURE_TOO_LARGE


def test_a_key_that_is_not_p256_is_a_configuration_error(model):
    signature = sign_model(model, SIGNER)
    ed25519_pem = testkeys.signer("model-signing-ed25519").public_pem()

    with pytest.raises(ValueError, match="does not match algorithm"):
        verify_model(model, signature, ed25519_pem)


@pytest.fixture(scope="module")
def fuzz_model(tmp_path_factory) -> tuple[Path, bytes]:
    directory = make_model(tmp_path_factory.mktemp("fuzz") / "tiny-model")
    return directory, sign_model(directory, SIGNER)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_single_byte_change_of_the_signature_is_refused(fuzz_model, data):
    directory, signature = fuzz_model
    keyid = json.dumps(KEY_ID).encode()
    start = signature.index(b'"keyid":' + keyid) + len(b'"keyid":')
    outside_keyid = [i for i in range(len(signature)) if not start <= i < start + len(keyid)]
    index = data.draw(st.sampled_from(outside_keyid))
    value = data.draw(st.integers(0, 255).filter(lambda b: b != signature[index]))
    mutated = signature[:index] + bytes([value]) + signature[index + 1 :]

    with pytest.raises(ModelVerificationError):
        verify_model(directory, mutated, PUBLIC_PEM)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(index=st.integers(0, len(WEIGHTS) - 1), flip=st.integers(1, 255))
def test_any_single_byte_change_of_the_weights_is_refused(fuzz_model, index, flip):
    directory, signature = fuzz_model
    with (directory / "weights.bin").open("r+b") as weights:
        weights.seek(index)
        weights.write(bytes([WEIGHTS[index] ^ flip]))
    try:
        with pytest.raises(ModelVerificationError) as refused:
            verify_model(directory, signature, PUBLIC_PEM)
        assert refused.value.reason == ModelReason.MODEL_DIGEST_MISMATCH
    finally:
        (directory / "weights.bin").write_bytes(WEIGHTS)


# ---------------------------------------------------------------------------------------- signing refuses


def test_the_kms_cap_is_enforced_before_hashing(tmp_path, monkeypatch):
    names = [f"shard-{i:05d}-of-00099.bin" for i in range(40)]  # 24-character paths
    for name in names:
        (tmp_path / name).write_bytes(b"x")
    monkeypatch.setattr(attest, "file_sha256", lambda *a, **k: pytest.fail("hashed before checking the cap"))

    with pytest.raises(ValueError, match=r"over the 4096-byte limit of KMS RAW signing: with these names it fits 27"):
        sign_model(tmp_path, SIGNER)


def test_how_many_files_fit_under_the_kms_cap():
    names = [f"{i:020d}" for i in range(40)]  # 20-character paths

    assert signed_message_size("model", names[:28]) == 4041 <= MAX_SIGNED_MESSAGE
    assert signed_message_size("model", names[:29]) > MAX_SIGNED_MESSAGE
    assert signed_message_size("model", names[:2]) - signed_message_size("model", names[:1]) == 129


@pytest.mark.parametrize(
    ("prepare", "message"),
    [
        (lambda d: None, "it has no files"),
        (lambda d: (d / "link").symlink_to(d), "is a symbolic link"),
    ],
    ids=["empty", "symlink"],
)
def test_signing_refuses_what_no_verifier_would_accept(tmp_path, prepare, message):
    prepare(tmp_path)

    with pytest.raises(ValueError, match=message):
        sign_model(tmp_path, SIGNER)


def test_signing_refuses_bad_extras_and_keys(model):
    with pytest.raises(ValueError, match="statement_extra keys"):
        sign_model(model, SIGNER, statement_extra={"resources": []})
    with pytest.raises(ValueError, match="plain JSON"):
        sign_model(model, SIGNER, statement_extra={"loss": float("nan")})
    with pytest.raises(ValueError, match="ECDSA P-256"):
        sign_model(model, testkeys.signer("model-signing-ed25519"))
    with pytest.raises(ValueError, match="not the signer's own public key"):
        sign_model(model, SIGNER, public_key_pem=OTHER.public_pem())


# ----------------------------------------------------------------------------------------------------- KMS


@pytest.fixture
def kms(monkeypatch):
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "eu-west-1",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with mock_aws():
        yield boto3.client("kms", region_name="eu-west-1")


def test_a_kms_signed_model_verifies_with_the_exported_public_key(kms, model, tmp_path):
    key_arn = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["Arn"]
    signer = KmsSigner(kms, key_arn, "model-signing-kms")
    public_pem = kms_public_key_pem(kms, key_arn)  # GetPublicKey's DER, as PEM

    signature = sign_model(model, signer, public_key_pem=public_pem)

    standard_verify(model, signature, public_pem, tmp_path)
    assert verify_model(model, signature, public_pem).keyid_hint == "model-signing-kms"
    assert refusal(model, signature, PUBLIC_PEM).reason == ModelReason.MODEL_SIGNATURE_INVALID
    (tmp_path / "kms.pem").write_bytes(public_pem)
    (tmp_path / "kms.sig").write_bytes(signature)
    assert cli_verify(model, tmp_path / "kms.sig", tmp_path / "kms.pem").returncode == 0


def test_a_kms_signer_needs_its_public_key(kms, model):
    key_arn = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["Arn"]

    with pytest.raises(ValueError, match="kms_public_key_pem"):
        sign_model(model, KmsSigner(kms, key_arn, "model-signing-kms"))
    with pytest.raises(ValueError, match="does not verify with the public key"):
        sign_model(model, KmsSigner(kms, key_arn, "model-signing-kms"), public_key_pem=PUBLIC_PEM)


def test_kms_public_key_pem_refuses_other_key_specs(kms):
    key_arn = kms.create_key(KeySpec="RSA_2048", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["Arn"]

    with pytest.raises(ValueError, match="expected an ECC_NIST_P256 SIGN_VERIFY key, got RSA_2048"):
        kms_public_key_pem(kms, key_arn)


# ---------------------------------------------------------------------------------------------------- lean


def test_the_verifier_imports_only_the_stdlib_and_cryptography():
    probe = (
        "import sys; before = set(sys.modules); import mlvault.attestation.openssf; "
        "new = {m.split('.')[0] for m in set(sys.modules) - before}; "
        "print('\\n'.join(sorted(new - set(sys.stdlib_module_names))))"
    )
    imported = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60)

    assert set(imported.stdout.split()) <= {"mlvault", "cryptography", "_cffi_backend", "_openssl"}
    # model_signing is a verifier for people and tests: the demo (developer tooling, never shipped) may run it;
    # nothing shipped to Lambda imports it.
    importing = re.compile(r"^\s*(import|from)\s+model_signing\b", re.MULTILINE)
    importers = [p for p in (ROOT / "layers").rglob("*.py") if importing.search(p.read_text(errors="replace"))]
    assert [p.relative_to(ROOT).as_posix() for p in importers] == []
