"""Trust as code: the registry of producers, their datasets and keys (a reviewed file under trust/).

The verifier takes a producer's identity from the object key's prefix and its key from this registry —
never from the envelope. Revocations are recorded at run time (ledger) and judged by upload time.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from mlvault.errors import AnchorReason, TrustAnchorError
from mlvault.signing.keys import ALGORITHMS, load_public_key
from mlvault.wiring import Bundle

ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")  # producer, dataset and key ids


class TrustRegistryError(ValueError):
    """The trust registry file is invalid; the message names the entry and the field."""


@dataclass(frozen=True)
class ProducerKey:
    id: str
    producer: str
    algorithm: str
    not_before: datetime
    not_after: datetime
    public_key_pem: str | None = None
    kms_key_arn: str | None = None

    def public_key(self, kms: Any | None = None) -> Any:
        """The registered public key: the registry's PEM, or a KMS key's as `kms` (a KMS client) returns it."""
        if self.public_key_pem is not None:
            return load_public_key(self.algorithm, self.public_key_pem.encode())
        if kms is None:
            raise ValueError(f"key {self.id} is a KMS key: verify it online (mlvault status), or export its public key")
        return load_public_key(self.algorithm, kms.get_public_key(KeyId=self.kms_key_arn)["PublicKey"])


@dataclass(frozen=True)
class Producer:
    id: str
    datasets: tuple[str, ...]
    keys: dict[str, ProducerKey]


@dataclass(frozen=True)
class ProducerRegistry:
    producers: dict[str, Producer]

    def key(self, key_id: str) -> ProducerKey | None:
        for producer in self.producers.values():
            if key_id in producer.keys:
                return producer.keys[key_id]
        return None


def _timestamp(where: str, value: Any) -> datetime:
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise TrustRegistryError(f"{where} must be an ISO 8601 timestamp, got {value!r}") from None
    if parsed.tzinfo is None:
        raise TrustRegistryError(f"{where} must carry a time zone (e.g. Z), got {value!r}")
    return parsed


def parse_registry(data: Any, source: str = "registry") -> ProducerRegistry:
    if not isinstance(data, dict) or data.get("version") != 1 or not isinstance(data.get("producers"), dict):
        raise TrustRegistryError(f"{source}: expected {{'version': 1, 'producers': {{...}}}}")
    unknown = set(data) - {"version", "producers", "description"}
    if unknown:
        raise TrustRegistryError(f"{source}: unknown top-level field(s) {sorted(unknown)}")
    producers: dict[str, Producer] = {}
    seen_keys: set[str] = set()
    for producer_id, entry in data["producers"].items():
        where = f"{source}: producer {producer_id!r}"
        if not ID_PATTERN.match(producer_id):
            raise TrustRegistryError(f"{where}: id must match {ID_PATTERN.pattern}")
        if not isinstance(entry, dict) or set(entry) - {"description", "datasets", "keys"}:
            raise TrustRegistryError(f"{where}: allowed fields are description, datasets, keys")
        datasets = entry.get("datasets")
        if (
            not isinstance(datasets, list)
            or not datasets
            or not all(isinstance(d, str) and ID_PATTERN.match(d) for d in datasets)
        ):
            raise TrustRegistryError(f"{where}: datasets must be a non-empty list of ids matching {ID_PATTERN.pattern}")
        keys: dict[str, ProducerKey] = {}
        for raw in entry.get("keys") or []:
            key = _parse_key(where, producer_id, raw)
            if key.id in seen_keys:
                raise TrustRegistryError(f"{where}: key id {key.id!r} is used twice in the registry")
            seen_keys.add(key.id)
            keys[key.id] = key
        if not keys:
            raise TrustRegistryError(f"{where}: needs at least one key")
        producers[producer_id] = Producer(id=producer_id, datasets=tuple(datasets), keys=keys)
    return ProducerRegistry(producers=producers)


def _parse_key(where: str, producer_id: str, raw: Any) -> ProducerKey:
    allowed = {"id", "algorithm", "public_key", "kms_key_arn", "not_before", "not_after"}
    if not isinstance(raw, dict) or set(raw) - allowed:
        raise TrustRegistryError(
            f"{where}: key fields are {sorted(allowed)}, got {sorted(raw) if isinstance(raw, dict) else raw!r}"
        )
    key_id = raw.get("id")
    if not isinstance(key_id, str) or not ID_PATTERN.match(key_id):
        raise TrustRegistryError(f"{where}: key id must match {ID_PATTERN.pattern}, got {key_id!r}")
    where = f"{where} key {key_id!r}"
    algorithm = raw.get("algorithm")
    if algorithm not in ALGORITHMS:
        raise TrustRegistryError(f"{where}: algorithm must be one of {', '.join(ALGORITHMS)}, got {algorithm!r}")
    if ("public_key" in raw) == ("kms_key_arn" in raw):
        raise TrustRegistryError(f"{where}: give exactly one of public_key or kms_key_arn")
    if "public_key" in raw:
        try:
            load_public_key(algorithm, str(raw["public_key"]).encode())
        except ValueError as err:
            raise TrustRegistryError(f"{where}: public_key is not a {algorithm} public key ({err})") from None
    elif algorithm != "ecdsa-p256-sha256" or not str(raw["kms_key_arn"]).startswith("arn:aws:kms:"):
        raise TrustRegistryError(f"{where}: kms_key_arn must be a KMS key ARN of an ECC_NIST_P256 key")
    not_before = _timestamp(f"{where} not_before", raw.get("not_before"))
    not_after = _timestamp(f"{where} not_after", raw.get("not_after"))
    if not_after <= not_before:
        raise TrustRegistryError(f"{where}: not_after must be after not_before")
    return ProducerKey(
        id=key_id,
        producer=producer_id,
        algorithm=algorithm,
        not_before=not_before,
        not_after=not_after,
        public_key_pem=raw.get("public_key"),
        kms_key_arn=raw.get("kms_key_arn"),
    )


def load_registry(path: str | Path) -> ProducerRegistry:
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise TrustRegistryError(f"{path}: cannot read the trust registry ({err})") from None
    return parse_registry(data, str(path))


def load_bundled_registry(path: str | Path) -> ProducerRegistry:
    """The trust registry bundled with a function's code at `path` (Bundle.TRUST_FILE), for a function that must fail
    closed with a stable code before it acts (the revoke function): TrustAnchorError, PRODUCERS_MISSING without one,
    PRODUCERS_MALFORMED for one that does not parse (the detail is load_registry's)."""
    path = Path(path)
    if not path.is_file():
        raise TrustAnchorError(
            AnchorReason.PRODUCERS_MISSING, f"no trust registry {Bundle.TRUST_FILE!r} in the function's bundle"
        )
    try:
        return load_registry(path)
    except TrustRegistryError as err:
        raise TrustAnchorError(AnchorReason.PRODUCERS_MALFORMED, str(err)) from None
