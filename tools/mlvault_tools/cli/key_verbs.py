"""`mlvault producers revoke`: revoke a producer key from a time on, and handle the blast radius (the stage's revoke
function does both, as the caller's identity: permission to invoke it is permission to revoke)."""

from __future__ import annotations

import argparse
import json

from mlvault_tools.cli.base import (
    NO,
    OK,
    Cloud,
    NotDone,
    cloud_options,
    input_file,
    iso_time,
    json_option,
    print_json,
    reason_text,
    trust_file,
)


def _revoke(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from mlvault.trust.producers import load_registry

    cloud = Cloud(args)
    effective = args.effective_at or datetime.now(UTC)
    registry = args.registry or trust_file(cloud.stage)
    if registry is None or not registry.is_file():
        raise NotDone(
            f"no trust registry of stage {cloud.stage} is readable here to check {args.key_id!r} against: run it in "
            "a checkout of the app or give --registry trust/<stage>.json (a revocation is for good)"
        )
    if load_registry(registry).key(args.key_id) is None:
        raise NotDone(f"key {args.key_id!r} is in no producer entry of {registry}: nothing revoked")
    event = {
        "key_id": args.key_id,
        "effective_at": effective.isoformat(),
        "reason": args.reason,
        "revoked_by": cloud.client("sts").get_caller_identity()["Arn"],  # who: what these credentials prove
    }
    response = cloud.client("lambda").invoke(FunctionName=cloud.name("revoke-function"), Payload=json.dumps(event))
    report = json.loads(response["Payload"].read() or b"{}")
    if response.get("FunctionError"):
        message = " ".join(str(report.get("errorMessage", report)).split())
        raise NotDone(f"the revoke function of stage {cloud.stage} refused: {message}")
    revocation = report.get("revocation", {})
    first = revocation.get("recorded") != "ALREADY_REVOKED"
    if args.json:
        print_json(report)
        return OK if first else NO
    if first:
        print(
            f"key {args.key_id} revoked from {revocation.get('effective_at')} (judged by upload time) by "
            f"{revocation.get('revoked_by')}: {revocation.get('reason')}"
        )
    else:
        print(
            f"key {args.key_id} was already revoked (from {revocation.get('effective_at')} by "
            f"{revocation.get('revoked_by')}); the first revocation stands; its blast radius, checked again:"
        )
    print(f"  {len(report.get('tainted_files', []))} accepted file(s) it signed since then, marked tainted")
    for uri in report.get("tainted_files", []):
        print(f"    {uri}")
    print(
        f"  {len(report.get('revoked_models', []))} model(s) trained on them, REVOKED: "
        f"{', '.join(report.get('revoked_models', [])) or '-'}"
    )
    print(f"  serving: {report['status']} ({report['reason']})")
    return OK if first else NO


def register(verbs) -> None:
    producers = verbs.add_parser("producers", help="producer keys: revoke")
    actions = producers.add_subparsers(title="producer commands", metavar="ACTION", required=True)
    revoke = actions.add_parser(
        "revoke",
        help="revoke a key from a time on, without a redeploy",
        description="Refuses a key id that no producer entry of the stage's registry has. Exit 0 revoked; 3 it was "
        "already revoked (the first revocation stands); 1 nothing revoked.",
    )
    revoke.add_argument("key_id")
    revoke.add_argument("--reason", required=True, type=reason_text, help="why: recorded with who revoked it")
    revoke.add_argument(
        "--effective-at", type=iso_time, help="ISO time from which uploads signed by it are refused (default: now)"
    )
    revoke.add_argument(
        "--registry",
        type=input_file("a trust registry (trust/<stage>.json)"),
        help="registry to check the key id against (default: the stage's trustFile in cdk.json)",
    )
    json_option(revoke)
    cloud_options(revoke)
    revoke.set_defaults(func=_revoke)
