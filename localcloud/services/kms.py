"""KMS: Sign and Verify with MessageType=DIGEST, Verify of a bad signature (gap 11) and key state (gap 16).

11. KMS Sign and Verify with MessageType=DIGEST. moto ignores MessageType and hashes the digest again, so the
   signature is over sha256(digest), which verifies against no one's view of the original message. Here a
   DIGEST message is used as the prehashed value (`Prehashed(SHA-256/384/512)` by the algorithm, for ECC and
   RSA keys), its length must be the algorithm's digest size (ValidationException otherwise, as in AWS), and
   Verify with DIGEST checks the same way: a DIGEST signature verifies over the original message anywhere.
   moto's Verify also answers SignatureValid=false for a bad signature, where AWS fails the request with
   KMSInvalidSignatureException: here it fails, as in AWS (for RAW and DIGEST).
16. KMS key state. moto signs, verifies, encrypts and decrypts with a Disabled key or a key PendingDeletion.
   AWS refuses every cryptographic operation on such a key: DisabledException (`<key ARN> is disabled.`) for a
   Disabled key, KMSInvalidStateException (`<key ARN> is pending deletion.`) for a key PendingDeletion, both
   400. Here Sign, Verify, GetPublicKey, Encrypt, Decrypt, ReEncrypt, GenerateDataKey(*), GenerateMac and
   VerifyMac check the key's state first. DisableKey, EnableKey, ScheduleKeyDeletion and CancelKeyDeletion take
   the key's ARN as AWS does (moto's answered a 500 for an ARN). (Key policies, the other half of what a key's
   owner relies on, are evaluated for every KMS request by authz.py, gap 14.)
"""

from __future__ import annotations

import json
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from localcloud.server import LocalCloud

_state = threading.local()  # kms_digest: the Sign/Verify request being served has MessageType=DIGEST


_CRYPTOGRAPHIC = (
    "sign",
    "verify",
    "get_public_key",
    "encrypt",
    "decrypt",
    "re_encrypt",
    "generate_data_key",
    "generate_data_key_without_plaintext",
    "generate_data_key_pair",
    "generate_data_key_pair_without_plaintext",
    "generate_mac",
    "verify_mac",
)


def install(cloud: LocalCloud) -> None:
    _message_type()
    _key_state()


def _key_state() -> None:
    from moto.core.exceptions import JsonRESTError
    from moto.kms.models import KmsBackend
    from moto.kms.responses import KmsResponse

    def by_id(name: str) -> None:  # moto indexes its keys by id: an ARN is a KeyError there
        original = getattr(KmsBackend, name)

        def wrapper(self: Any, key_id: str, *args: Any, **kwargs: Any) -> Any:
            return original(self, self.get_key_id(key_id), *args, **kwargs)

        setattr(KmsBackend, name, wrapper)

    for name in ("disable_key", "enable_key", "schedule_key_deletion", "cancel_key_deletion"):
        by_id(name)

    def checked(name: str) -> None:
        original = getattr(KmsResponse, name)

        def wrapper(self: Any) -> Any:
            key = _key_of_request(self)
            if key is not None and key.key_state == "Disabled":
                raise JsonRESTError("DisabledException", f"{key.arn} is disabled.")
            if key is not None and key.key_state == "PendingDeletion":
                raise JsonRESTError("KMSInvalidStateException", f"{key.arn} is pending deletion.")
            return original(self)

        setattr(KmsResponse, name, wrapper)

    for name in _CRYPTOGRAPHIC:
        if hasattr(KmsResponse, name):
            checked(name)


def _key_of_request(response: Any) -> Any:
    """The key a cryptographic request uses (by KeyId, or the key of a Decrypt's ciphertext), if it exists."""
    import base64

    from moto.kms.utils import _deserialize_ciphertext_blob

    backend = response.kms_backend
    key_id = response._get_param("KeyId") or response._get_param("SourceKeyId")
    if not key_id and response._get_param("CiphertextBlob"):
        try:
            key_id = _deserialize_ciphertext_blob(base64.b64decode(response._get_param("CiphertextBlob"))).key_id
        except Exception:  # noqa: BLE001 - not a ciphertext of this KMS: moto refuses it
            return None
    if not key_id:
        return None
    try:
        return backend.keys[backend.any_id_to_key_id(key_id)]
    except Exception:  # noqa: BLE001 - an unknown key: moto answers NotFoundException
        return None


def _message_type() -> None:
    """Patch moto's KMS Sign and Verify for MessageType=DIGEST and bad signatures (gap 11)."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric import ec
    from moto.core.exceptions import JsonRESTError
    from moto.kms.exceptions import ValidationException
    from moto.kms.responses import KmsResponse
    from moto.kms.utils import ECDSAPrivateKey, RSAPrivateKey, SigningAlgorithm, validate_signing_algorithm

    def with_message_type(name: str) -> None:
        original = getattr(KmsResponse, name)

        def wrapper(self: Any) -> Any:
            message_type = self._get_param("MessageType") or "RAW"
            if message_type not in ("RAW", "DIGEST"):
                raise ValidationException(
                    f"1 validation error detected: Value '{message_type}' at 'messageType' failed to satisfy "
                    "constraint: Member must satisfy enum value set: [RAW, DIGEST]"
                )
            _state.kms_digest = message_type == "DIGEST"
            try:
                response = original(self)
            finally:
                _state.kms_digest = False
            if name == "verify" and not json.loads(response)["SignatureValid"]:
                raise JsonRESTError("KMSInvalidSignatureException", "")
            return response

        setattr(KmsResponse, name, wrapper)

    ecdsa_sign, ecdsa_verify = ECDSAPrivateKey.sign, ECDSAPrivateKey.verify
    rsa_sign, rsa_verify = RSAPrivateKey.sign, RSAPrivateKey.verify

    def ecdsa_sign_digest(self: Any, message: bytes, signing_algorithm: str) -> bytes:
        if not getattr(_state, "kms_digest", False):
            return ecdsa_sign(self, message, signing_algorithm)
        validate_signing_algorithm(signing_algorithm, self.valid_signing_algorithms)
        return self.private_key.sign(message, ec.ECDSA(_prehashed(signing_algorithm, message)))

    def ecdsa_verify_digest(self: Any, message: bytes, signature: bytes, signing_algorithm: str) -> bool:
        if not getattr(_state, "kms_digest", False):
            return ecdsa_verify(self, message, signature, signing_algorithm)
        validate_signing_algorithm(signing_algorithm, self.valid_signing_algorithms)
        try:
            self.private_key.public_key().verify(signature, message, ec.ECDSA(_prehashed(signing_algorithm, message)))
        except InvalidSignature:
            return False
        return True

    def rsa_sign_digest(self: Any, message: bytes, signing_algorithm: str) -> bytes:
        if not getattr(_state, "kms_digest", False):
            return rsa_sign(self, message, signing_algorithm)
        validate_signing_algorithm(signing_algorithm, SigningAlgorithm.rsa_signing_algorithms())
        pad, _ = self._RSAPrivateKey__padding_and_hash_algorithm(signing_algorithm)
        return self.private_key.sign(message, pad, _prehashed(signing_algorithm, message))

    def rsa_verify_digest(self: Any, message: bytes, signature: bytes, signing_algorithm: str) -> bool:
        if not getattr(_state, "kms_digest", False):
            return rsa_verify(self, message, signature, signing_algorithm)
        validate_signing_algorithm(signing_algorithm, SigningAlgorithm.rsa_signing_algorithms())
        pad, _ = self._RSAPrivateKey__padding_and_hash_algorithm(signing_algorithm)
        try:
            self.private_key.public_key().verify(signature, message, pad, _prehashed(signing_algorithm, message))
        except InvalidSignature:
            return False
        return True

    with_message_type("sign")
    with_message_type("verify")
    ECDSAPrivateKey.sign, ECDSAPrivateKey.verify = ecdsa_sign_digest, ecdsa_verify_digest
    RSAPrivateKey.sign, RSAPrivateKey.verify = rsa_sign_digest, rsa_verify_digest


def _prehashed(signing_algorithm: str, digest: bytes) -> Any:
    """The digest as cryptography's prehashed value for the algorithm's hash; its length must be that hash's."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
    from moto.kms.exceptions import ValidationException

    algorithm = {"SHA_256": hashes.SHA256(), "SHA_384": hashes.SHA384(), "SHA_512": hashes.SHA512()}.get(
        signing_algorithm[-7:]
    )
    if algorithm is None:
        raise ValidationException(f"MessageType DIGEST is not supported for {signing_algorithm} in the local cloud.")
    if len(digest) != algorithm.digest_size:
        raise ValidationException(f"Digest is invalid length for algorithm {signing_algorithm}.")
    return Prehashed(algorithm)
