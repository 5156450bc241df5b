"""Deterministic producer keys for the demo, the golden vectors and the tests.

They are derived from published seeds, so they are public by construction: the dev stage's registry
(trust/dev.json) trusts them so that `make demo` can sign uploads; no other stage may. Not shipped to Lambda.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace

from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from mlvault.ingest.protocol import METADATA_KEY, Claim, encode_metadata, new_claim, sign
from mlvault.signing.keys import LocalSigner

_P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def _seed(name: str) -> bytes:
    return hashlib.sha256(f"mlvault public test key {name}: never trust it outside dev and tests".encode()).digest()


def ed25519_key(name: str) -> ed25519.Ed25519PrivateKey:
    return ed25519.Ed25519PrivateKey.from_private_bytes(_seed(name))


def p256_key(name: str) -> ec.EllipticCurvePrivateKey:
    return ec.derive_private_key(int.from_bytes(_seed(name), "big") % (_P256_ORDER - 1) + 1, ec.SECP256R1())


def private_key(key_id: str):
    """The private key of a test key id: ids ending in -ed25519 are Ed25519, the rest ECDSA P-256."""
    return ed25519_key(key_id) if key_id.endswith("-ed25519") else p256_key(key_id)


def signer(key_id: str) -> LocalSigner:
    return LocalSigner(private_key(key_id), key_id)


def claim_for(object_key: str, body: bytes, **changes: object) -> Claim:
    """A fresh claim for uploading `body` under `object_key` (producer and dataset from the key's layout);
    `changes` replace fields, to build the attacks the tests and the demo show."""
    parts = object_key.split("/")
    claim = new_claim(
        object_key=object_key,
        sha256=hashlib.sha256(body).hexdigest(),
        size=len(body),
        producer=parts[1] if len(parts) > 1 else "",
        dataset=parts[2] if len(parts) > 2 else "",
        contract_version="1",
    )
    return replace(claim, **changes)


def signed_metadata(claim: Claim, key_id: str) -> dict[str, str]:
    """The user metadata of an upload of `claim`, signed with the test key `key_id`."""
    return {METADATA_KEY: encode_metadata(sign(claim, signer(key_id)))}
