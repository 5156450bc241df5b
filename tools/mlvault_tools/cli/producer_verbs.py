"""`mlvault keygen | sign | push | verify`: the producer's side of the protocol."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mlvault.errors import VerificationError
from mlvault_tools.cli.base import (
    DEFAULT_STAGE,
    HELD,
    NO,
    OK,
    PENDING,
    Cloud,
    NotDone,
    cloud_options,
    input_file,
    iso_time,
    json_option,
    number,
    on_terminal,
    output_file,
    print_json,
    refusal_answers,
    signer,
    signer_options,
    trust_file,
)

# The verdicts of an upload and the exit code each is (status, push --wait).
VERDICT_EXIT = {"ACCEPTED": OK, "REJECTED": NO, "HELD": HELD}
CONTRACTS = Path("contracts")  # the reviewed contracts, beside cdk.json in a checkout of the app


def identifier(what: str):
    """A producer, dataset or key id, as the trust registry spells them."""
    from mlvault.trust.producers import ID_PATTERN

    def parse(value: str) -> str:
        if not ID_PATTERN.match(value):
            raise argparse.ArgumentTypeError(
                f"{value!r} is not a {what} id (lowercase letters, digits and '-', 2-63 characters)"
            )
        return value

    return parse


def envelope_value(value: str) -> str:
    """The envelope itself, or @FILE holding it."""
    if value.startswith("@"):
        return input_file("a file holding the envelope that `mlvault sign` printed")(value[1:]).read_text().strip()
    return value


def _keygen(args: argparse.Namespace) -> int:
    from mlvault_tools.producer import keygen

    entry = keygen(args.algorithm, args.key_id, args.out, valid_days=args.valid_days)
    print(f"private key written to {args.out} (mode 0600): keep it secret", file=sys.stderr)
    print("add this key to the producer's entry in trust/<stage>.json, by reviewed change:", file=sys.stderr)
    print_json(entry)
    return OK


def _claim_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--producer", required=True, type=identifier("producer"), help="your producer id (the registry's)")
    p.add_argument("--dataset", required=True, type=identifier("dataset"))
    p.add_argument("--name", help="object name under producers/<producer>/<dataset>/ (default: the file's name)")
    p.add_argument("--contract-version", default="1")
    signer_options(p)
    p.add_argument(
        "--validity-minutes",
        type=number(int, minimum=1, maximum=24 * 60),
        default=60,
        help="how long the signature is valid (1-1440 minutes; default 60)",
    )


def _signed(args: argparse.Namespace, cloud: Cloud | None):
    """The claim and the envelope of args.file under its object key, signed as the options say."""
    from datetime import timedelta

    from mlvault_tools.producer import object_key, sign_file

    return sign_file(
        args.file,
        key=object_key(args.producer, args.dataset, args.name or args.file.name),
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
    return OK


def _preflight(cloud: Cloud, claim, envelope: str) -> str | None:
    """Refuse, before uploading, what the stage's verifier would refuse without reading the bytes: checked
    against the trust registry the stage ships (when this is a checkout of the app) and its ledger's revocations.
    Returns what it checked against, or None when no registry is readable here."""
    from mlvault.trust.producers import load_registry
    from mlvault_tools.producer import preflight

    registry = trust_file(cloud.stage)
    if registry is None or not registry.is_file():
        return None
    try:
        preflight(
            claim,
            envelope,
            registry=load_registry(registry),
            contracts=CONTRACTS if CONTRACTS.is_dir() else None,
            revoked_at=cloud.ledger().revoked_at,
            public_key=lambda key: key.public_key(cloud.client("kms")),
        )
    except VerificationError as err:
        raise NotDone(
            f"{err.reason}: {err.detail} (stage {cloud.stage}'s {registry}, checked before uploading: nothing was "
            "uploaded)"
        ) from None
    return str(registry)


def _push(args: argparse.Namespace) -> int:
    import time

    from mlvault_tools.producer import location, progress_bar, push

    cloud = Cloud(args)
    claim, envelope = _signed(args, cloud)
    checked = _preflight(cloud, claim, envelope)
    pushed = push(
        cloud.client("s3"),
        args.file,
        bucket=cloud.name("ingest-bucket"),
        claim=claim,
        envelope=envelope,
        progress=progress_bar() if on_terminal() and not args.quiet else None,
    )
    answer = {
        "bucket": pushed.bucket,
        "key": pushed.key,
        "version_id": pushed.version_id,
        "size": pushed.size,
        "sha256": pushed.sha256,
        "checked_against": checked,
        "verdict": None,
    }
    if not args.json:
        print(
            f"pushed s3://{pushed.bucket}/{pushed.key} version {pushed.version_id} ({pushed.size} bytes, "
            f"sha256 {pushed.sha256})"
        )
    if not args.wait:
        if args.json:
            print_json(answer)
        return OK
    ledger = cloud.ledger()
    deadline = time.monotonic() + args.wait
    record = None
    while time.monotonic() < deadline:
        record = ledger.get(pushed.bucket, pushed.key, pushed.version_id)
        if record is not None and record.status in VERDICT_EXIT:
            break
        time.sleep(0.2)
    else:
        if args.json:
            print_json(answer)
        else:
            print(f"no verdict within {args.wait:g}s: see `mlvault status {pushed.key}`", file=sys.stderr)
        return PENDING
    reason, detail = record.attributes.get("reason"), record.attributes.get("detail")
    answer.update(verdict=record.status, reason=reason, detail=detail, location=location(record))
    if args.json:
        print_json(answer)
        return VERDICT_EXIT[record.status]
    print(f"verdict: {record.status}" + (f" {reason}: {detail}" if record.status != "ACCEPTED" and reason else ""))
    print(f"now at: {location(record)}")
    if record.status == "HELD":
        print(
            f'held for review: mlvault review approve|reject {pushed.key} --version {pushed.version_id} --reason "..."'
        )
    return VERDICT_EXIT[record.status]


def _verify(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from mlvault.trust.producers import load_registry
    from mlvault_tools.producer import verify_offline

    registry = args.registry or trust_file(DEFAULT_STAGE)
    if registry is None:
        raise ValueError(f"no cdk.json here names the {DEFAULT_STAGE} stage's trustFile: give --registry")
    verified = verify_offline(
        args.file,
        key=args.object_key,
        envelope=args.envelope,
        registry=load_registry(registry),
        at=args.at or datetime.now(UTC),
    )
    if args.json:
        print_json(
            {
                "verdict": "ACCEPT",
                "key_id": verified.key.id,
                "algorithm": verified.key.algorithm,
                "producer": verified.claim.producer,
                "dataset": verified.claim.dataset,
                "sha256": verified.claim.sha256,
            }
        )
        return OK
    print(
        f"ACCEPT signed by {verified.key.id} ({verified.key.algorithm}) for producer {verified.claim.producer}, "
        f"dataset {verified.claim.dataset}, sha256 {verified.claim.sha256}"
    )
    return OK


def register(verbs) -> None:
    keygen = verbs.add_parser("keygen", help="create a producer signing key and print its registry entry")
    keygen.add_argument("--algorithm", choices=("ecdsa-p256-sha256", "ed25519"), default="ecdsa-p256-sha256")
    keygen.add_argument("--key-id", required=True, type=identifier("key"))
    keygen.add_argument(
        "--out",
        required=True,
        type=output_file("where to write the private key"),
        help="where to write the private key (PEM, mode 0600; never overwritten)",
    )
    keygen.add_argument(
        "--valid-days", type=number(int, minimum=1), default=365, help="days the key is valid (default 365)"
    )
    keygen.set_defaults(func=_keygen)

    data_file = input_file("the data file to sign")
    sign = verbs.add_parser("sign", help="sign a file for upload; prints the x-amz-meta-mlvault-envelope value")
    sign.add_argument("file", type=data_file)
    _claim_options(sign)
    cloud_options(sign)
    sign.set_defaults(func=_sign)

    push = verbs.add_parser(
        "push",
        help="sign a file and upload it to the ingest bucket (multipart when large)",
        description="Signs the file, checks the upload against the stage's trust registry (when this is a checkout "
        "of the app) and its revocations, uploads it, and with --wait waits for the verdict. Exit 0 ACCEPTED, "
        "3 REJECTED, 4 HELD (for review), 5 no verdict within --wait, 1 refused before uploading or the stage "
        "cannot be reached.",
    )
    push.add_argument("file", type=data_file)
    _claim_options(push)
    push.add_argument(
        "--wait", type=number(float, minimum=0), default=0, help="wait up to N seconds for the verdict (default: 0)"
    )
    push.add_argument("--quiet", action="store_true", help="no progress bar (there is none off a terminal)")
    json_option(push)
    cloud_options(push)
    push.set_defaults(func=_push)

    verify = verbs.add_parser(
        "verify",
        help="verify a file and its envelope offline against a trust registry",
        description="Exit 0 ACCEPT, 3 REJECT (with its reason code).",
    )
    verify.add_argument("file", type=data_file)
    verify.add_argument("--object-key", required=True, help="the key it is (to be) uploaded under")
    verify.add_argument("--envelope", required=True, type=envelope_value, help="the envelope value, or @FILE")
    verify.add_argument("--registry", type=input_file("a trust registry (trust/<stage>.json)"))
    verify.add_argument("--at", type=iso_time, help="judge validity at this time (default: now)")
    json_option(verify)
    refusal_answers(verify, VerificationError, "REJECT")
    verify.set_defaults(func=_verify)
