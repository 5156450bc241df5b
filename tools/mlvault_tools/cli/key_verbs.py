"""`mlvault producers revoke`: revoke a producer key from a time on, and handle the blast radius (the stage's revoke
function does both, as the caller's identity: permission to invoke it is permission to revoke)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from mlvault_tools.cli.base import Cloud, cloud_options, trust_file


def _revoke(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    cloud = Cloud(args)
    effective = (
        datetime.fromisoformat(args.effective_at.replace("Z", "+00:00")) if args.effective_at else datetime.now(UTC)
    )
    if effective.tzinfo is None:
        raise ValueError("--effective-at needs a time zone, e.g. 2026-11-25T10:00:00Z")
    registry = Path(args.registry) if args.registry else trust_file(cloud.stage)
    if registry is not None and registry.is_file():
        from mlvault.trust.producers import load_registry

        if load_registry(registry).key(args.key_id) is None:
            raise ValueError(f"key {args.key_id!r} is not in {registry}")
    event = {
        "key_id": args.key_id,
        "effective_at": effective.isoformat(),
        "reason": args.reason,
        "revoked_by": cloud.client("sts").get_caller_identity()["Arn"],  # who: what these credentials prove
    }
    response = cloud.client("lambda").invoke(FunctionName=cloud.name("revoke-function"), Payload=json.dumps(event))
    report = json.loads(response["Payload"].read() or b"{}")
    if response.get("FunctionError"):
        print(f"revocation NOT handled: {report.get('errorMessage', report)}")
        return 1
    revocation = report.get("revocation", {})
    first = revocation.get("recorded") != "ALREADY_REVOKED"
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
    return 0 if first else 1


def register(verbs) -> None:
    producers = verbs.add_parser("producers", help="producer keys: revoke")
    actions = producers.add_subparsers(title="producer commands", metavar="ACTION", required=True)
    revoke = actions.add_parser("revoke", help="revoke a key from a time on, without a redeploy")
    revoke.add_argument("key_id")
    revoke.add_argument("--reason", required=True)
    revoke.add_argument("--effective-at", help="ISO time from which uploads signed by it are refused (default: now)")
    revoke.add_argument(
        "--registry", help="registry to check the key id against (default: the stage's trustFile in cdk.json)"
    )
    cloud_options(revoke)
    revoke.set_defaults(func=_revoke)
