"""`mlvault status | review | report`: what became of an upload, and the human decision on a held one."""

from __future__ import annotations

import argparse
import json

from mlvault.errors import ReviewError
from mlvault_tools.cli.base import Cloud, cloud_options, refusal_answers


def _uploads(cloud: Cloud, args: argparse.Namespace) -> list:
    """The recorded versions of the upload args.key (only args.version, when given), oldest first."""
    from mlvault_tools.producer import status

    records = status(cloud.ledger(), cloud.name("ingest-bucket"), args.key)
    return [r for r in records if args.version in (None, r.version_id)]


def _none_recorded(cloud: Cloud, key: str) -> int:
    print(f"no upload of {key} is recorded in stage {cloud.stage}")
    return 1


def _status(args: argparse.Namespace) -> int:
    from mlvault_tools.producer import location

    cloud = Cloud(args)
    records = _uploads(cloud, args)
    if args.json:
        print(
            json.dumps(
                [
                    {
                        "key": r.key,
                        "version_id": r.version_id,
                        "status": r.status,
                        "size": r.size,
                        "received_at": r.received_at,
                        "reason": r.attributes.get("reason"),
                        "detail": r.attributes.get("detail"),
                        "location": location(r),
                        **{k: v for k, v in r.attributes.items() if k not in ("reason", "detail")},
                    }
                    for r in records
                ],
                indent=2,
            )
        )
        return 0 if records else 1
    if not records:
        return _none_recorded(cloud, args.key)
    for r in records:
        verdict = r.status + (
            f" {r.attributes['reason']}: {r.attributes.get('detail')}"
            if r.status != "ACCEPTED" and "reason" in r.attributes
            else ""
        )
        if r.status == "HELD":
            verdict += (
                f"\n  held for review: mlvault review approve|reject {r.key} --version {r.version_id} --reason ..."
            )
        print(f"{r.key} version {r.version_id}\n  {verdict}\n  now at: {location(r)}")
    return 0


def _review(args: argparse.Namespace) -> int:
    from mlvault_tools.review_client import request_review as request

    cloud = Cloud(args)
    held = [r for r in _uploads(cloud, args) if r.status == "HELD"]
    if len(held) != 1:
        which = f"version {args.version} of " if args.version else ""
        print(f"{len(held)} held {which}{args.key}: " + ("give --version" if held else "nothing to review"))
        return 1
    result = request(
        cloud.client("lambda"),
        cloud.client("sts"),
        cloud.name("review-function"),
        key=args.key,
        version_id=held[0].version_id,
        decision=args.decision,
        reason=args.reason,
    )
    where = f" -> s3://{result['lake_bucket']}/{result['lake_key']}" if result["status"] == "ACCEPTED" else ""
    print(f"{args.key} version {held[0].version_id}: {result['status']} by {result['reviewed_by']}{where}")
    return 0


def _report(args: argparse.Namespace) -> int:
    from mlvault.contracts.screen import Profile
    from mlvault_tools.producer import location

    cloud = Cloud(args)
    records = _uploads(cloud, args)
    if not records:
        return _none_recorded(cloud, args.key)
    ledger, bucket = cloud.ledger(), cloud.name("ingest-bucket")
    for r in records:
        a = r.attributes
        lines = [f"{r.key} version {r.version_id}: {r.status} {a.get('reason', '')}".rstrip()]
        lines.append(f"  producer {a.get('producer', '?')}, key {a.get('key_id', '?')}, sha256 {a.get('sha256', '?')}")
        if "detail" in a:
            lines.append(f"  detail: {a['detail']}")
        if "contract" in a:
            lines.append(f"  contract: {a['contract']}, {a['rows']} rows valid")
            lines.append(f"  screen: {a['screen']}")
        raw = ledger.profile(bucket, r.key, r.version_id)
        if raw is not None:
            profile = Profile.from_bytes(raw)
            labels = ", ".join(f"{k} {v / max(profile.rows, 1):.0%}" for k, v in sorted(profile.label.items()))
            lines.append(f"  profile: {profile.rows} rows; labels: {labels or 'none'}")
            nulls = ", ".join(f"{k} {v}" for k, v in sorted(profile.nulls.items()) if v)
            lines.append(f"  nulls: {nulls or 'none'}")
        if "reviewed_by" in a:
            lines.append(f"  reviewed by {a['reviewed_by']} at {a['reviewed_at']}: {a['review_reason']}")
        lines.append(f"  now at: {location(r)}")
        print("\n".join(lines))
    return 0


def _upload_arguments(p: argparse.ArgumentParser, version_help: str) -> None:
    p.add_argument("key", help="the object key in the ingest bucket")
    p.add_argument("--version", help=version_help)


def register(verbs) -> None:
    status = verbs.add_parser("status", help="verdict, reason code and location of an upload")
    _upload_arguments(status, "only this version")
    status.add_argument("--json", action="store_true")
    cloud_options(status)
    status.set_defaults(func=_status)

    review = verbs.add_parser("review", help="release or reject an upload the poisoning screen held")
    review.add_argument("decision", choices=["approve", "reject"])
    _upload_arguments(review, "the held version (needed when several are held)")
    review.add_argument("--reason", required=True, help="why: recorded in the ledger with who decided")
    cloud_options(review)
    refusal_answers(review, ReviewError)
    review.set_defaults(func=_review)

    report = verbs.add_parser("report", help="the validation and screening report of an upload")
    _upload_arguments(report, "only this version")
    cloud_options(report)
    report.set_defaults(func=_report)
