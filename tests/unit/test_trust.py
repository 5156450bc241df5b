"""The trust registry is validated as a whole: a typo fails loudly, naming the entry and the field."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from mlvault.trust.producers import TrustRegistryError, load_registry, parse_registry

ROOT = Path(__file__).resolve().parents[2]
DEV = json.loads((ROOT / "trust/dev.json").read_text())


def broken(mutate):
    data = copy.deepcopy(DEV)
    mutate(data)
    return data


def acme_key(data):
    return data["producers"]["acme"]["keys"][0]


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.update(version=2), "expected {'version': 1"),
        (lambda d: d.update(producer={}), "unknown top-level field"),
        (lambda d: d["producers"].update(Bad_Name=d["producers"]["acme"]), "producer 'Bad_Name': id must match"),
        (lambda d: d["producers"]["acme"].update(dataset=["iris"]), "allowed fields are description, datasets, keys"),
        (lambda d: d["producers"]["acme"].update(datasets=[]), "datasets must be a non-empty list"),
        (lambda d: acme_key(d).update(algorithm="rsa"), "algorithm must be one of ecdsa-p256-sha256, ed25519"),
        (lambda d: acme_key(d).update(public_key="not a key"), "public_key is not a ecdsa-p256-sha256 public key"),
        (lambda d: acme_key(d).update(algorithm="ed25519"), "public_key is not a ed25519 public key"),
        (
            lambda d: acme_key(d).update(kms_key_arn="arn:aws:kms:eu-west-1:111111111111:key/x"),
            "give exactly one of public_key or kms_key_arn",
        ),
        (lambda d: acme_key(d).update(not_after="2031-01-01"), "must carry a time zone"),
        (lambda d: acme_key(d).update(not_after="2020-01-01T00:00:00Z"), "not_after must be after not_before"),
        (lambda d: d["producers"]["globex"]["keys"].append(acme_key(d)), "is used twice in the registry"),
        (lambda d: acme_key(d).update(expires="2030"), "key fields are"),
    ],
)
def test_typos_fail_with_the_entry_and_field(mutate, message):
    with pytest.raises(TrustRegistryError, match=message.replace("(", r"\(").replace("{", r"\{")):
        parse_registry(broken(mutate))


def test_the_registries_in_the_repo_are_valid():
    assert set(load_registry(ROOT / "trust/dev.json").producers) == {"acme", "demo-producer", "globex"}
    assert load_registry(ROOT / "trust/prod.json").producers == {}


def test_a_kms_key_entry():
    registry = parse_registry(
        broken(
            lambda d: d["producers"]["globex"]["keys"].append(
                {
                    "id": "globex-kms",
                    "algorithm": "ecdsa-p256-sha256",
                    "kms_key_arn": "arn:aws:kms:eu-west-1:111111111111:key/00000000-0000-0000-0000-000000000000",
                    "not_before": "2026-01-01T00:00:00Z",
                    "not_after": "2027-01-01T00:00:00Z",
                }
            )
        )
    )
    assert registry.key("globex-kms").kms_key_arn.startswith("arn:aws:kms:")
