"""`mlvault keygen | sign | push | verify`: the producer's side of the protocol."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from mlvault.errors import VerificationError
from mlvault_tools.cli.base import (
    DEFAULT_STAGE,
    Cloud,
    cloud_options,
    refusal_answers,
    signer,
    signer_options,
    trust_file,
)


def _keygen(args: argparse.Namespace) -> int:
    from mlvault_tools.producer import keygen

    entry = keygen(args.algorithm, args.key_id, Path(args.out), valid_days=args.valid_days)
    print(f"private key written to {args.out} (mode 0600): keep it secret", file=sys.stderr)
    print("add this key to the producer's entry in trust/<stage>.json, by reviewed change:", file=sys.stderr)
    print(json.dumps(entry, indent=2))
    return 0


def _claim_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--producer", required=True, help="your producer id (the registry's and the upload prefix)")
    p.add_argument("--dataset", required=True)
    p.add_argument("--name", help="object name under producers/<producer>/<dataset>/ (default: the file's name)")
    p.add_argument("--contract-version", default="1")
    signer_options(p)
    p.add_argument("--validity-minutes", type=int, default=60)


def _signed(args: argparse.Namespace, cloud: Cloud | None):
    """The claim and the envelope of args.file under its object key, signed as the options say."""
    from datetime import timedelta

    from mlvault_tools.producer import object_key, sign_file

    path = Path(args.file)
    return sign_file(
        path,
        key=object_key(args.producer, args.dataset, args.name or path.name),
        producer=args.producer,
        dataset=args.dataset,
        contract_version=args.contract_version,
        signer=signer(args, cloud),
        validity=timedelta(minutes=args.validity_minutes),
    )


def _sign(args: argparse.Namespace) -> int:
    claim, envelope = _signed(args, Cloud(args) if args.kms_key else None)
    print(f"object key: {claim.object_key}\nsha256: {claim.sha256}\nx-amz-meta-mlvault-envelope:", file=sys.stderr)
    print(envelope)
    return 0


def _push(args: argparse.Namespace) -> int:
    import time

    from mlvault_tools.producer import location, progress_bar, push

    cloud = Cloud(args)
    claim, envelope = _signed(args, cloud)
    pushed = push(
        cloud.client("s3"),
        Path(args.file),
        bucket=cloud.name("ingest-bucket"),
        claim=claim,
        envelope=envelope,
        progress=None if args.quiet else progress_bar(),
    )
    print(
        f"pushed s3://{pushed.bucket}/{pushed.key} version {pushed.version_id} ({pushed.size} bytes, "
        f"sha256 {pushed.sha256})"
    )
    if not args.wait:
        return 0
    ledger = cloud.ledger()
    deadline = time.monotonic() + args.wait
    while time.monotonic() < deadline:
        record = ledger.get(pushed.bucket, pushed.key, pushed.version_id)
        if record and record.status in ("ACCEPTED", "REJECTED"):
            reason = (
                f" {record.attributes.get('reason')}: {record.attributes.get('detail')}"
                if record.status == "REJECTED"
                else ""
            )
            print(f"verdict: {record.status}{reason}\nnow at: {location(record)}")
            return 0 if record.status == "ACCEPTED" else 1
        time.sleep(0.2)
    print(f"no verdict within {args.wait}s (see `mlvault status {pushed.key}`)", file=sys.stderr)
    return 3


def _verify(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from mlvault.trust.producers import load_registry
    from mlvault_tools.producer import verify_offline

    envelope = Path(args.envelope[1:]).read_text().strip() if args.envelope.startswith("@") else args.envelope
    at = datetime.fromisoformat(args.at.replace("Z", "+00:00")) if args.at else datetime.now(UTC)
    registry = args.registry or trust_file(DEFAULT_STAGE)
    if registry is None:
        raise ValueError(f"no cdk.json here names the {DEFAULT_STAGE} stage's trustFile: give --registry")
    verified = verify_offline(
        Path(args.file), key=args.object_key, envelope=envelope, registry=load_registry(registry), at=at
    )
    print(
        f"ACCEPT signed by {verified.key.id} ({verified.key.algorithm}) for producer {verified.claim.producer}, "
        f"dataset {verified.claim.dataset}, sha256 {verified.claim.sha256}"
    )
    return 0


def register(verbs) -> None:
    keygen = verbs.add_parser("keygen", help="create a producer signing key and print its registry entry")
    keygen.add_argument("--algorithm", choices=("ecdsa-p256-sha256", "ed25519"), default="ecdsa-p256-sha256")
    keygen.add_argument("--key-id", required=True)
    keygen.add_argument("--out", required=True, help="where to write the private key (PEM, mode 0600)")
    keygen.add_argument("--valid-days", type=int, default=365)
    keygen.set_defaults(func=_keygen)

    sign = verbs.add_parser("sign", help="sign a file for upload; prints the x-amz-meta-mlvault-envelope value")
    sign.add_argument("file")
    _claim_options(sign)
    cloud_options(sign)
    sign.set_defaults(func=_sign)

    push = verbs.add_parser("push", help="sign a file and upload it to the ingest bucket (multipart when large)")
    push.add_argument("file")
    _claim_options(push)
    push.add_argument("--wait", type=float, default=0, help="wait up to N seconds for the verdict")
    push.add_argument("--quiet", action="store_true", help="no progress bar")
    cloud_options(push)
    push.set_defaults(func=_push)

    verify = verbs.add_parser("verify", help="verify a file and its envelope offline against a trust registry")
    verify.add_argument("file")
    verify.add_argument("--object-key", required=True, help="the key it is (to be) uploaded under")
    verify.add_argument("--envelope", required=True, help="the envelope value, or @FILE")
    verify.add_argument("--registry")
    verify.add_argument("--at", help="judge validity at this time (default: now)")
    refusal_answers(verify, VerificationError, "REJECT")
    verify.set_defaults(func=_verify)
