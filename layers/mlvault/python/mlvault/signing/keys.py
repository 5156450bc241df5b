"""Producer keys: ECDSA P-256 with SHA-256 (a local key or KMS ECC_NIST_P256, RAW messages) and Ed25519."""

from __future__ import annotations

from typing import Any, Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from mlvault.errors import IngestReason, VerificationError

ECDSA_P256 = "ecdsa-p256-sha256"
ED25519 = "ed25519"
ALGORITHMS = (ECDSA_P256, ED25519)
KMS_MAX_RAW_MESSAGE = 4096


class Signer(Protocol):
    keyid: str
    algorithm: str

    def sign(self, message: bytes) -> bytes: ...


class LocalSigner:
    """A producer's private key from a PEM file (PKCS#8)."""

    def __init__(self, private_key: Any, keyid: str) -> None:
        if isinstance(private_key, ec.EllipticCurvePrivateKey):
            if not isinstance(private_key.curve, ec.SECP256R1):
                raise ValueError(f"ECDSA keys must be P-256, got {private_key.curve.name}")
            self.algorithm = ECDSA_P256
        elif isinstance(private_key, ed25519.Ed25519PrivateKey):
            self.algorithm = ED25519
        else:
            raise ValueError(f"unsupported key type {type(private_key).__name__}; use {' or '.join(ALGORITHMS)}")
        self._key = private_key
        self.keyid = keyid

    @classmethod
    def from_pem(cls, pem: bytes, keyid: str) -> LocalSigner:
        return cls(serialization.load_pem_private_key(pem, password=None), keyid)

    def sign(self, message: bytes) -> bytes:
        if self.algorithm == ECDSA_P256:
            return self._key.sign(message, ec.ECDSA(hashes.SHA256()))
        return self._key.sign(message)

    def public_pem(self) -> str:
        return public_pem(self._key.public_key())


class KmsSigner:
    """ECDSA P-256 with a KMS ECC_NIST_P256 key, signing the RAW message (at most 4096 bytes)."""

    algorithm = ECDSA_P256

    def __init__(self, kms: Any, key_arn: str, keyid: str) -> None:
        self._kms = kms
        self._key_arn = key_arn
        self.keyid = keyid

    def sign(self, message: bytes) -> bytes:
        if len(message) > KMS_MAX_RAW_MESSAGE:
            raise ValueError(f"KMS signs RAW messages of at most {KMS_MAX_RAW_MESSAGE} bytes, got {len(message)}")
        return self._kms.sign(
            KeyId=self._key_arn, Message=message, MessageType="RAW", SigningAlgorithm="ECDSA_SHA_256"
        )["Signature"]


def generate(algorithm: str) -> Any:
    if algorithm == ECDSA_P256:
        return ec.generate_private_key(ec.SECP256R1())
    if algorithm == ED25519:
        return ed25519.Ed25519PrivateKey.generate()
    raise ValueError(f"unknown algorithm {algorithm!r}; use one of {', '.join(ALGORITHMS)}")


def private_pem(key: Any) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def public_pem(public_key: Any) -> str:
    return public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def load_public_key(algorithm: str, der_or_pem: bytes) -> Any:
    """A public key of the algorithm the registry pins; any other key type is refused."""
    key = (
        serialization.load_pem_public_key(der_or_pem)
        if der_or_pem.lstrip().startswith(b"-----")
        else serialization.load_der_public_key(der_or_pem)
    )
    if algorithm == ECDSA_P256 and isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
        return key
    if algorithm == ED25519 and isinstance(key, ed25519.Ed25519PublicKey):
        return key
    raise ValueError(f"public key does not match algorithm {algorithm}")


def verify_signature(algorithm: str, public_key: Any, signature: bytes, message: bytes) -> None:
    try:
        if algorithm == ECDSA_P256:
            public_key.verify(signature, message, ec.ECDSA(hashes.SHA256()))
        elif algorithm == ED25519:
            public_key.verify(signature, message)
        else:
            raise VerificationError(IngestReason.UNKNOWN_KEY, f"unsupported algorithm {algorithm!r}")
    except InvalidSignature:
        raise VerificationError(
            IngestReason.INVALID_SIGNATURE, "signature does not verify with the registered key"
        ) from None
