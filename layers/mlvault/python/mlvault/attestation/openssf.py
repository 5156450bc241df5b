"""Model signatures in the OpenSSF model-signing format, and the verifier the serving Lambda runs before it serves.

`sign_model` writes what `model_signing sign key` (PyPI `model-signing` 1.1.1, sigstore/model-transparency) writes,
so the standard verifier checks our models offline with the exported public key:

    model_signing verify key MODEL_PATH --signature MODEL.sig --public_key KEY.pem

`verify_model` is our own verifier of that format. It imports nothing but the standard library and `cryptography`
(never `model_signing`: the serving Lambda stays lean) and fails closed: it returns a `VerifiedModel` or raises
`ModelVerificationError` with a stable reason code (`ModelReason`) and an "expected X, got Y" detail.

Why one module of ~550 lines: it is one format, written and read. The signer and the verifier must agree on every
byte (the statement's canonical form, the PAE, the bundle's fields) and half of the file is this docstring, the
format's specification; split, the two halves could drift apart without a test noticing first.

The format
----------
The signature file is a Sigstore bundle (JSON, compact):

    {"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
     "verificationMaterial": {"publicKey": {"hint": <hex SHA-256 of the public key as SubjectPublicKeyInfo PEM>},
                              "tlogEntries": []},
     "dsseEnvelope": {"payload": <base64 statement>, "payloadType": "application/vnd.in-toto+json",
                      "signatures": [{"sig": <base64 DER ECDSA P-256 SHA-256 over PAE(payloadType, payload)>,
                                      "keyid": <the signer's key id: a hint, not signed>}]}}

No certificate and no transparency-log entry: the key is trusted because the verifier is given it. The payload is
an in-toto Statement v1 with predicateType "https://model_signing/signature/v1.0":

    {"_type": "https://in-toto.io/Statement/v1",
     "subject": [{"name": <the model directory's (or file's) name>,
                  "digest": {"sha256": <SHA-256 over the resources' raw digests, in the listed order>}}],
     "predicateType": "https://model_signing/signature/v1.0",
     "predicate": {"serialization": {"method": "files", "hash_type": "sha256", "allow_symlinks": false,
                                     "ignore_paths": [".git", ".gitattributes", ".github", ".gitignore"]},
                   "resources": [{"name": <POSIX path relative to the model root>, "algorithm": "sha256",
                                  "digest": <hex SHA-256 of the file's bytes>}, ...],
                   ...statement_extra}}

One resource per regular file, sorted by path components as model_signing sorts them; a model that is a single
file has one resource named ".". Like `sign key`, the top-level git paths are not signed. Symbolic links and
special files are refused. Extra predicate fields (`statement_extra`, e.g. the training manifest's digest) are
signed; model-signing v1.0 verifiers ignore them, `verify_model` returns them.

Keep the signature file outside the model directory: the bundle cannot list the file it is stored in, so
`verify_model` would refuse it as an unsigned file (MODEL_FILE_EXTRA); the `model_signing` CLI skips the file
passed as --signature.

Size: the KMS RAW cap
---------------------
KMS signs RAW messages of at most 4096 bytes, and the message is the whole PAE of the statement. Each file costs
109 bytes plus the length of its path (ASCII), the rest 424 bytes plus the model's name and the `statement_extra`
JSON: a model named "model" with 20-character paths fits 28 files (4041 bytes; see `signed_message_size`). Every
signer is held to the cap, so that a model signed with a local key in a test can also be signed by the pipeline's
KMS key; `sign_model` refuses a larger statement before hashing anything, saying how many of its files fit.
Larger models need KMS `MessageType=DIGEST` (sign the SHA-256 of the PAE): not implemented, because moto hashes
a DIGEST message a second time (GUIDE section 6), so a test of it would lie.
"""

from __future__ import annotations

import base64
import binascii
import errno
import hashlib
import json
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from mlvault.errors import ModelReason, ModelVerificationError
from mlvault.signing.dsse import PAYLOAD_TYPE, pae
from mlvault.signing.keys import ECDSA_P256, KMS_MAX_RAW_MESSAGE, Signer, load_public_key

BUNDLE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://model_signing/signature/v1.0"
SERIALIZATION_METHOD = "files"
HASH_TYPE = "sha256"
IGNORE_PATHS = (".git", ".gitattributes", ".github", ".gitignore")  # what `sign key` leaves out by default
SINGLE_FILE = "."  # the resource name of a model that is one file
MAX_SIGNED_MESSAGE = KMS_MAX_RAW_MESSAGE
MAX_SIGNATURE_BYTES = 1024 * 1024  # bound before parsing; standard signatures of large models are larger than ours
CHUNK_BYTES = 1024 * 1024
_PREDICATE_FIELDS = ("serialization", "resources")
_HEX = frozenset("0123456789abcdef")


@dataclass(frozen=True)
class VerifiedModel:
    """A model whose files were exactly the signed files, byte for byte, when they were read: load the model from
    where nobody else writes (the Lambda's own /tmp), or it can change after verification."""

    path: Path
    model_name: str  # the signed subject name (informative: renaming a model does not invalidate it)
    root_digest: str  # the subject's sha256, over the file digests
    digests: Mapping[str, str]  # resource name -> hex SHA-256, in the signed order
    statement: dict[str, Any]  # the signed in-toto statement
    extra: dict[str, Any] = field(default_factory=dict)  # the signed predicate fields besides serialization/resources
    keyid_hint: str = ""  # the envelope's keyid: NOT signed, for logs only


def _fail(reason: str, detail: str) -> NoReturn:
    raise ModelVerificationError(reason, detail)


# ----------------------------------------------------------------------------------------------- files and digests


def _path_order(name: str) -> list[str]:
    """model_signing sorts resources as PurePosixPath objects: component by component ("a/b" before "a-b")."""
    return name.split("/")


def _valid_name(name: str) -> bool:
    if name == SINGLE_FILE:
        return True
    return bool(name) and "\x00" not in name and all(part not in ("", ".", "..") for part in name.split("/"))


def _is_ignored(name: str, ignore: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + "/") for p in ignore)


def _list_files(root: Path, ignore: tuple[str, ...]) -> dict[str, Path]:
    """Resource name -> path of every regular file of the model (a directory or one file), minus ignored paths."""
    if root.is_symlink():
        _fail(ModelReason.MODEL_FILE_UNSUPPORTED, f"the model path {str(root)!r} is a symbolic link, expected a file")
    if not root.exists():
        _fail(ModelReason.MODEL_FILE_MISSING, f"the model path {str(root)!r} does not exist")
    if root.is_file():
        return {SINGLE_FILE: root}
    if not root.is_dir():
        _fail(ModelReason.MODEL_FILE_UNSUPPORTED, f"the model path {str(root)!r} is neither a file nor a directory")
    files: dict[str, Path] = {}
    pending = [("", root)]
    while pending:
        prefix, directory = pending.pop()
        with os.scandir(directory) as entries:
            for entry in entries:
                name = prefix + entry.name
                if _is_ignored(name, ignore):
                    continue
                if entry.is_symlink():
                    _fail(ModelReason.MODEL_FILE_UNSUPPORTED, f"{name!r} is a symbolic link, expected a regular file")
                if entry.is_dir(follow_symlinks=False):
                    pending.append((name + "/", Path(entry.path)))
                elif entry.is_file(follow_symlinks=False):
                    files[name] = Path(entry.path)
                else:
                    _fail(ModelReason.MODEL_FILE_UNSUPPORTED, f"{name!r} is a special file, expected a regular file")
    return files


def file_sha256(path: Path, *, name: str = "") -> str:
    """Hex SHA-256 of a regular file, read in CHUNK_BYTES chunks (memory does not grow with the file); a symbolic
    link swapped in after listing is refused (O_NOFOLLOW)."""
    label = name or str(path)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        _fail(ModelReason.MODEL_FILE_MISSING, f"{label!r} disappeared while the model was read")
    except OSError as err:
        if err.errno == errno.ELOOP:
            _fail(ModelReason.MODEL_FILE_UNSUPPORTED, f"{label!r} is a symbolic link, expected a regular file")
        raise
    with os.fdopen(fd, "rb", buffering=0) as stream:
        if not stat.S_ISREG(os.fstat(stream.fileno()).st_mode):
            _fail(ModelReason.MODEL_FILE_UNSUPPORTED, f"{label!r} is not a regular file")
        digest = hashlib.sha256()
        while chunk := stream.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def _root_digest(hex_digests: list[str]) -> str:
    return hashlib.sha256(b"".join(bytes.fromhex(d) for d in hex_digests)).hexdigest()


def _model_name(root: Path) -> str:
    return root.name or os.path.basename(root.resolve())


# ----------------------------------------------------------------------------------------------------- signing


def _statement(model_name: str, resources: list[dict[str, str]], extra: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": model_name, "digest": {"sha256": _root_digest([r["digest"] for r in resources])}}],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "serialization": {
                "method": SERIALIZATION_METHOD,
                "hash_type": HASH_TYPE,
                "allow_symlinks": False,
                "ignore_paths": list(IGNORE_PATHS),
            },
            "resources": resources,
            **extra,
        },
    }


def _to_json(data: Any) -> bytes:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def _check_extra(statement_extra: Mapping[str, Any] | None) -> dict[str, Any]:
    extra = dict(statement_extra or {})
    for key in extra:
        if not isinstance(key, str) or key in _PREDICATE_FIELDS:
            raise ValueError(f"statement_extra keys must be strings other than {_PREDICATE_FIELDS}, got {key!r}")
    try:
        _to_json(extra)
    except (TypeError, ValueError) as err:
        raise ValueError(f"statement_extra must be plain JSON (no NaN or infinity): {err}") from None
    return extra


def signed_message_size(model_name: str, names: list[str], statement_extra: Mapping[str, Any] | None = None) -> int:
    """Bytes of the PAE that signs a model of these resource names (digests have a fixed length)."""
    resources = [{"name": n, "algorithm": HASH_TYPE, "digest": "0" * 64} for n in names]
    return len(pae(PAYLOAD_TYPE, _to_json(_statement(model_name, resources, _check_extra(statement_extra)))))


def _files_that_fit(model_name: str, names: list[str], extra: dict[str, Any]) -> int:
    low, high = 0, len(names)  # the largest count whose statement fits, by bisection
    while low < high:
        middle = (low + high + 1) // 2
        if signed_message_size(model_name, names[:middle], extra) <= MAX_SIGNED_MESSAGE:
            low = middle
        else:
            high = middle - 1
    return low


def _public_key_of(signer: Signer, public_key_pem: bytes | str | None) -> ec.EllipticCurvePublicKey:
    algorithm = getattr(signer, "algorithm", ECDSA_P256)
    if algorithm != ECDSA_P256:
        raise ValueError(f"model-signing keys are ECDSA P-256 with SHA-256 ({ECDSA_P256}), got a {algorithm} signer")
    own = signer.public_pem() if hasattr(signer, "public_pem") else None
    given = public_key_pem or own
    if given is None:
        raise ValueError(
            f"{type(signer).__name__} has no public key to name in the bundle: pass public_key_pem= "
            "(for KMS: kms_public_key_pem(kms, key_arn))"
        )
    key = load_public_key(ECDSA_P256, given.encode() if isinstance(given, str) else given)
    if own is not None and public_key_pem is not None:
        mine = load_public_key(ECDSA_P256, own.encode() if isinstance(own, str) else own)
        if _spki_pem(mine) != _spki_pem(key):
            raise ValueError("public_key_pem is not the signer's own public key")
    return key


def _spki_pem(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def key_hint(key: ec.EllipticCurvePublicKey) -> str:
    """The bundle's publicKey.hint: hex SHA-256 of the key's SubjectPublicKeyInfo PEM (as model_signing computes)."""
    return hashlib.sha256(_spki_pem(key)).hexdigest()


def kms_public_key_pem(kms: Any, key_arn: str) -> bytes:
    """The PEM public key of a KMS ECC_NIST_P256 SIGN_VERIFY key (GetPublicKey returns DER): what a verifier is
    given, and what `sign_model` names in the bundle when signing with a KmsSigner."""
    response = kms.get_public_key(KeyId=key_arn)
    spec = response.get("KeySpec") or response.get("CustomerMasterKeySpec")
    if spec != "ECC_NIST_P256" or response.get("KeyUsage") != "SIGN_VERIFY":
        raise ValueError(f"expected an ECC_NIST_P256 SIGN_VERIFY key, got {spec} {response.get('KeyUsage')}")
    return _spki_pem(load_public_key(ECDSA_P256, response["PublicKey"]))


def sign_model(
    path: str | os.PathLike[str],
    signer: Signer,
    *,
    statement_extra: Mapping[str, Any] | None = None,
    public_key_pem: bytes | str | None = None,
) -> bytes:
    """The signature file (a Sigstore bundle, see the module docstring) of the model at `path`: a directory of
    artifact files, or one file.

    `signer.sign(message)` returns a DER ECDSA P-256 SHA-256 signature of `message` (LocalSigner, KmsSigner);
    `signer.keyid` goes into the envelope as a hint. The bundle names the public key: a LocalSigner knows it, a
    KmsSigner needs `public_key_pem` (`kms_public_key_pem`). The signature is checked with that key before it is
    returned. Raises ValueError when the model cannot be signed (no files, a link, over the 4096-byte cap).
    """
    root = Path(path)
    public_key = _public_key_of(signer, public_key_pem)
    extra = _check_extra(statement_extra)
    try:
        files = _list_files(root, IGNORE_PATHS)
    except ModelVerificationError as err:
        raise ValueError(f"cannot sign {str(root)!r}: {err.detail}") from None
    if not files:
        raise ValueError(f"cannot sign {str(root)!r}: it has no files")
    for name in files:
        try:
            name.encode()
        except UnicodeEncodeError:
            raise ValueError(f"cannot sign {str(root)!r}: the file name {name!r} is not UTF-8") from None
    names = sorted(files, key=_path_order)
    model_name = _model_name(root)
    size = signed_message_size(model_name, names, extra)  # before hashing: the cap depends on names only
    if size > MAX_SIGNED_MESSAGE:
        fit = _files_that_fit(model_name, names, extra)
        raise ValueError(
            f"the signed statement of {len(names)} files would be {size} bytes, over the {MAX_SIGNED_MESSAGE}-byte "
            f"limit of KMS RAW signing: with these names it fits {fit} files. Larger models need KMS "
            "MessageType=DIGEST, which is not implemented (moto hashes DIGEST messages again)"
        )
    resources = [{"name": n, "algorithm": HASH_TYPE, "digest": file_sha256(files[n], name=n)} for n in names]
    payload = _to_json(_statement(model_name, resources, extra))
    message = pae(PAYLOAD_TYPE, payload)
    signature = signer.sign(message)
    try:
        public_key.verify(signature, message, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise ValueError(f"the signature of signer {signer.keyid!r} does not verify with the public key") from None
    bundle = {
        "mediaType": BUNDLE_MEDIA_TYPE,
        "verificationMaterial": {"publicKey": {"hint": key_hint(public_key)}, "tlogEntries": []},
        "dsseEnvelope": {
            "payload": base64.b64encode(payload).decode(),
            "payloadType": PAYLOAD_TYPE,
            "signatures": [{"sig": base64.b64encode(signature).decode(), "keyid": signer.keyid}],
        },
    }
    return _to_json(bundle)


# ------------------------------------------------------------------------------------------------- verification


def _malformed(detail: str) -> NoReturn:
    _fail(ModelReason.MALFORMED_MODEL_SIGNATURE, detail)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for key, value in pairs:
        if key in data:
            _malformed(f"duplicate JSON key {key!r}")
        data[key] = value
    return data


def _no_constant(name: str) -> NoReturn:
    _malformed(f"JSON constant {name} is not allowed")


def _json(data: bytes, what: str) -> Any:
    try:
        return json.loads(data.decode("utf-8"), object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        _malformed(f"the {what} is not UTF-8 JSON")


def _object(value: Any, keys: set[str], what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        _malformed(f"{what}: expected a JSON object, got {type(value).__name__}")
    if set(value) != keys:
        _malformed(f"{what}: expected the fields {sorted(keys)}, got {sorted(value)}")
    return value


def _b64(value: Any, what: str) -> bytes:
    if not isinstance(value, str):
        _malformed(f"{what}: expected a base64 string, got {type(value).__name__}")
    try:
        decoded = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        _malformed(f"{what} is not valid base64")
    if base64.b64encode(decoded).decode() != value:
        _malformed(f"{what} is not canonical base64")
    return decoded


def _hex64(value: Any, what: str) -> str:
    if not (isinstance(value, str) and len(value) == 64 and set(value) <= _HEX):
        _malformed(f"{what}: expected 64 lowercase hex digits, got {value!r}")
    return value


def _expect(value: Any, expected: Any, what: str, reason: str = ModelReason.MALFORMED_MODEL_SIGNATURE) -> None:
    if type(value) is not type(expected) or value != expected:
        _fail(reason, f"{what}: expected {expected!r}, got {value!r}")


@dataclass(frozen=True)
class _Bundle:
    payload: bytes
    signature: bytes
    keyid: str
    hint: str


def _parse_bundle(signature: bytes) -> _Bundle:
    bundle = _object(_json(signature, "signature"), {"mediaType", "verificationMaterial", "dsseEnvelope"}, "bundle")
    _expect(bundle["mediaType"], BUNDLE_MEDIA_TYPE, "mediaType", ModelReason.MODEL_SIGNATURE_UNSUPPORTED)
    material = _object(bundle["verificationMaterial"], {"publicKey", "tlogEntries"}, "verificationMaterial")
    if material["tlogEntries"] != []:
        _fail(
            ModelReason.MODEL_SIGNATURE_UNSUPPORTED,
            f"verificationMaterial.tlogEntries: expected [] (offline verification), got {material['tlogEntries']!r}",
        )
    public_key = _object(material["publicKey"], {"hint"}, "verificationMaterial.publicKey")
    envelope = _object(bundle["dsseEnvelope"], {"payload", "payloadType", "signatures"}, "dsseEnvelope")
    _expect(envelope["payloadType"], PAYLOAD_TYPE, "dsseEnvelope.payloadType")
    signatures = envelope["signatures"]
    if not isinstance(signatures, list) or len(signatures) != 1:
        _malformed(f"dsseEnvelope.signatures: expected exactly one signature, got {signatures!r}")
    entry = _object(signatures[0], {"sig", "keyid"}, "dsseEnvelope.signatures[0]")
    if not isinstance(entry["keyid"], str):
        _malformed(f"dsseEnvelope.signatures[0].keyid: expected a string, got {entry['keyid']!r}")
    return _Bundle(
        payload=_b64(envelope["payload"], "dsseEnvelope.payload"),
        signature=_b64(entry["sig"], "dsseEnvelope.signatures[0].sig"),
        keyid=entry["keyid"],
        hint=_hex64(public_key["hint"], "verificationMaterial.publicKey.hint"),
    )


@dataclass(frozen=True)
class _Statement:
    data: dict[str, Any]
    model_name: str
    root_digest: str
    digests: dict[str, str]
    ignore: tuple[str, ...]
    extra: dict[str, Any]


def _parse_serialization(value: Any) -> tuple[str, ...]:
    if not isinstance(value, dict):
        _malformed(f"predicate.serialization: expected a JSON object, got {type(value).__name__}")
    known = {"method", "hash_type", "allow_symlinks", "ignore_paths"}
    if not {"method", "hash_type", "allow_symlinks"} <= set(value):
        _malformed(f"predicate.serialization: expected method, hash_type and allow_symlinks, got {sorted(value)}")
    unsupported = ModelReason.MODEL_SIGNATURE_UNSUPPORTED
    _expect(value["method"], SERIALIZATION_METHOD, "predicate.serialization.method", unsupported)
    _expect(value["hash_type"], HASH_TYPE, "predicate.serialization.hash_type", unsupported)
    _expect(value["allow_symlinks"], False, "predicate.serialization.allow_symlinks", unsupported)
    if not set(value) <= known:
        _malformed(f"predicate.serialization: unexpected fields {sorted(set(value) - known)}")
    ignore = value.get("ignore_paths", [])
    if not isinstance(ignore, list) or not all(isinstance(p, str) and p != "." and _valid_name(p) for p in ignore):
        _malformed(f"predicate.serialization.ignore_paths: expected relative paths inside the model, got {ignore!r}")
    return tuple(ignore)


def _parse_statement(payload: bytes) -> _Statement:
    statement = _object(_json(payload, "payload"), {"_type", "subject", "predicateType", "predicate"}, "statement")
    _expect(statement["_type"], STATEMENT_TYPE, "statement _type")
    _expect(statement["predicateType"], PREDICATE_TYPE, "predicateType", ModelReason.MODEL_SIGNATURE_UNSUPPORTED)
    subjects = statement["subject"]
    if not isinstance(subjects, list) or len(subjects) != 1:
        _malformed(f"subject: expected exactly one subject (the model), got {subjects!r}")
    subject = _object(subjects[0], {"name", "digest"}, "subject[0]")
    if not isinstance(subject["name"], str):
        _malformed(f"subject[0].name: expected a string, got {subject['name']!r}")
    root_digest = _hex64(_object(subject["digest"], {"sha256"}, "subject[0].digest")["sha256"], "subject digest")
    predicate = statement["predicate"]
    if not isinstance(predicate, dict) or not set(_PREDICATE_FIELDS) <= set(predicate):
        _malformed(f"predicate: expected an object with {list(_PREDICATE_FIELDS)}")
    ignore = _parse_serialization(predicate["serialization"])
    resources = predicate["resources"]
    if not isinstance(resources, list) or not resources:
        _malformed(f"predicate.resources: expected a non-empty list, got {resources!r}")
    digests: dict[str, str] = {}
    for index, resource in enumerate(resources):
        what = f"predicate.resources[{index}]"
        item = _object(resource, {"name", "algorithm", "digest"}, what)
        _expect(item["algorithm"], HASH_TYPE, f"{what}.algorithm", ModelReason.MODEL_SIGNATURE_UNSUPPORTED)
        name = item["name"]
        if not isinstance(name, str) or not _valid_name(name):
            _malformed(f"{what}.name: expected a relative path inside the model, got {name!r}")
        if name in digests:
            _malformed(f"{what}.name: {name!r} is listed twice")
        digests[name] = _hex64(item["digest"], f"{what}.digest")
    if SINGLE_FILE in digests and len(digests) > 1:
        _malformed(f"predicate.resources: {SINGLE_FILE!r} (a single-file model) must be the only resource")
    listed = _root_digest(list(digests.values()))
    if listed != root_digest:
        _malformed(f"subject digest: expected {listed} (over the listed resources), got {root_digest}")
    extra = {k: v for k, v in predicate.items() if k not in _PREDICATE_FIELDS}
    return _Statement(statement, subject["name"], root_digest, digests, ignore, extra)


def _names(names: set[str], limit: int = 5) -> str:
    shown = ", ".join(repr(n) for n in sorted(names, key=_path_order)[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def verify_model(path: str | os.PathLike[str], signature: bytes, public_key_pem: bytes | str) -> VerifiedModel:
    """Verify the model at `path` against its signature file and the trusted ECDSA P-256 public key (PEM or DER).

    Order: bound the size, parse the bundle's structure, verify the signature over PAE(payloadType, payload),
    check the key hint, parse the signed statement, then compare the model's files with the signed list and
    stream each file through SHA-256. Returns a VerifiedModel or raises ModelVerificationError. A public key that
    is not ECDSA P-256 raises ValueError: that is a configuration error, not a verdict on the model. I/O errors
    other than a vanished file propagate (retry: they are not a verdict either).
    """
    key = load_public_key(ECDSA_P256, public_key_pem.encode() if isinstance(public_key_pem, str) else public_key_pem)
    if len(signature) > MAX_SIGNATURE_BYTES:
        _fail(
            ModelReason.MODEL_SIGNATURE_TOO_LARGE,
            f"expected a signature of at most {MAX_SIGNATURE_BYTES} bytes, got {len(signature)}",
        )
    bundle = _parse_bundle(signature)
    expected_hint = key_hint(key)
    try:
        key.verify(bundle.signature, pae(PAYLOAD_TYPE, bundle.payload), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        names = "the same key" if bundle.hint == expected_hint else f"key {bundle.hint}"
        _fail(
            ModelReason.MODEL_SIGNATURE_INVALID,
            f"the signature does not verify with the given public key {expected_hint} (the bundle names {names})",
        )
    if bundle.hint != expected_hint:
        _malformed(f"verificationMaterial.publicKey.hint: expected {expected_hint}, got {bundle.hint}")
    statement = _parse_statement(bundle.payload)
    root = Path(path)
    files = _list_files(root, statement.ignore)
    missing = set(statement.digests) - set(files)
    extra = set(files) - set(statement.digests)
    if missing:
        unsigned = f"; not signed: {_names(extra)}" if extra else ""
        _fail(
            ModelReason.MODEL_FILE_MISSING,
            f"expected the {len(statement.digests)} signed files, missing {_names(missing)}{unsigned}",
        )
    if extra:
        signed = len(statement.digests)
        _fail(ModelReason.MODEL_FILE_EXTRA, f"expected only the {signed} signed files, got unsigned {_names(extra)}")
    for name, expected in statement.digests.items():
        got = file_sha256(files[name], name=name)
        if got != expected:
            _fail(ModelReason.MODEL_DIGEST_MISMATCH, f"{name!r}: expected sha256 {expected}, got {got}")
    return VerifiedModel(
        path=root,
        model_name=statement.model_name,
        root_digest=statement.root_digest,
        digests=dict(statement.digests),
        statement=statement.data,
        extra=statement.extra,
        keyid_hint=bundle.keyid,
    )
