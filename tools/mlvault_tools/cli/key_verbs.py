"""`mlvault producers revoke`: revoke a producer key from a time on, and handle the blast radius."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from mlvault_tools.cli.base import Cloud, cloud_options, trust_file


def _revoke(args: argparse.Namespace) -> int:
    import getpass
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
    written = cloud.ledger().revoke(
        args.key_id, effective_at=effective, reason=args.reason, revoked_by=args.revoked_by or getpass.getuser()
    )
    if not written:
        print(f"key {args.key_id} was already revoked; the first revocation stands")
        return 1
    print(f"key {args.key_id} revoked from {effective.isoformat()} (judged by upload time): {args.reason}")
    # The blast radius: data the key signed from then on, models trained on it, a live one rolled back.
    event = {"action": "revoke", "key_id": args.key_id, "effective_at": effective.isoformat()}
    response = cloud.client("lambda").invoke(FunctionName=cloud.name("rollback-function"), Payload=json.dumps(event))
    report = json.loads(response["Payload"].read() or b"{}")
    if response.get("FunctionError"):
        print(f"blast radius NOT handled: {report.get('errorMessage', report)}")
        return 1
    print(f"  {len(report.get('tainted_files', []))} accepted file(s) it signed since then, marked tainted")
    for uri in report.get("tainted_files", []):
        print(f"    {uri}")
    print(
        f"  {len(report.get('revoked_models', []))} model(s) trained on them, REVOKED: "
        f"{', '.join(report.get('revoked_models', [])) or '-'}"
    )
    print(f"  serving: {report['status']} ({report['reason']})")
    return 0


def register(verbs) -> None:
    producers = verbs.add_parser("producers", help="producer keys: revoke")
    actions = producers.add_subparsers(title="producer commands", metavar="ACTION", required=True)
    revoke = actions.add_parser("revoke", help="revoke a key from a time on, without a redeploy")
    revoke.add_argument("key_id")
    revoke.add_argument("--reason", required=True)
    revoke.add_argument("--effective-at", help="ISO time from which uploads signed by it are refused (default: now)")
    revoke.add_argument("--revoked-by", help="who revokes (default: the current user)")
    revoke.add_argument(
        "--registry", help="registry to check the key id against (default: the stage's trustFile in cdk.json)"
    )
    cloud_options(revoke)
    revoke.set_defaults(func=_revoke)
