"""Deterministic producer keys for the demo, the golden vectors and the tests.

They are derived from published seeds, so they are public by construction: the dev stage's registry
(trust/dev.json) trusts them so that `make demo` can sign uploads; no other stage may. Not shipped to Lambda.
"""

from __future__ import annotations

import hashlib

from cryptography.hazmat.primitives.asymmetric import ec, ed25519

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
