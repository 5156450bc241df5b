"""`mlvault status | review | report`: what became of an upload, and the human decision on a held one."""

from __future__ import annotations

import argparse
import json

from mlvault.errors import ReviewError
from mlvault_tools.cli.base import (
    OK,
    PENDING,
    Cloud,
    NotDone,
    cloud_options,
    json_option,
    print_json,
    reason_text,
    refusal_answers,
)
from mlvault_tools.cli.producer_verbs import VERDICT_EXIT


def _uploads(cloud: Cloud, args: argparse.Namespace) -> list:
    """The recorded versions of the upload args.key (only args.version, when given), oldest first."""
    from mlvault_tools.producer import status

    records = status(cloud.ledger(), cloud.name("ingest-bucket"), args.key)
    return [r for r in records if args.version in (None, r.version_id)]


def _recorded(cloud: Cloud, args: argparse.Namespace) -> list:
    records = _uploads(cloud, args)
    if not records:
        which = f"version {args.version} of " if args.version else ""
        raise NotDone(f"no upload of {which}{args.key} is recorded in stage {cloud.stage}")
    return records


def _verdict_exit(records: list) -> int:
    """The exit code of the newest version's verdict (PENDING while it awaits one)."""
    return VERDICT_EXIT.get(records[-1].status, PENDING)


def _status(args: argparse.Namespace) -> int:
    from mlvault_tools.producer import location

    cloud = Cloud(args)
    records = _recorded(cloud, args)
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
        return _verdict_exit(records)
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
    return _verdict_exit(records)


def _review(args: argparse.Namespace) -> int:
    from mlvault_tools.review_client import request_review as request

    cloud = Cloud(args)
    held = [r for r in _uploads(cloud, args) if r.status == "HELD"]
    if len(held) != 1:
        which = f"version {args.version} of " if args.version else ""
        raise NotDone(
            f"{len(held)} held versions of {args.key}: give --version ({', '.join(r.version_id for r in held)})"
            if held
            else f"no held {which}{args.key} in stage {cloud.stage}: nothing to review"
        )
    result = request(
        cloud.client("lambda"),
        cloud.client("sts"),
        cloud.name("review-function"),
        key=args.key,
        version_id=held[0].version_id,
        decision=args.decision,
        reason=args.reason,
    )
    if args.json:
        print_json({"key": args.key, "version_id": held[0].version_id, **result})
        return OK
    where = f" -> s3://{result['lake_bucket']}/{result['lake_key']}" if result["status"] == "ACCEPTED" else ""
    print(f"{args.key} version {held[0].version_id}: {result['status']} by {result['reviewed_by']}{where}")
    return OK


def _report_of(ledger, bucket: str, record) -> dict:
    """An upload version's report: its verdict, who signed it, its validation and screen, its profile, its review."""
    from mlvault.contracts.screen import Profile
    from mlvault_tools.producer import location

    a = record.attributes
    report = {
        "key": record.key,
        "version_id": record.version_id,
        "status": record.status,
        "reason": a.get("reason"),
        "detail": a.get("detail"),
        "producer": a.get("producer"),
        "key_id": a.get("key_id"),
        "sha256": a.get("sha256"),
        "contract": a.get("contract"),
        "rows": a.get("rows"),
        "screen": a.get("screen"),
        "profile": None,
        "review": (
            {"by": a["reviewed_by"], "at": a.get("reviewed_at"), "reason": a.get("review_reason")}
            if "reviewed_by" in a
            else None
        ),
        "location": location(record),
    }
    raw = ledger.profile(bucket, record.key, record.version_id)
    if raw is not None:
        profile = Profile.from_bytes(raw)
        report["profile"] = {
            "rows": profile.rows,
            "label_share": {k: round(v / max(profile.rows, 1), 3) for k, v in sorted(profile.label.items())},
            "nulls": {k: v for k, v in sorted(profile.nulls.items()) if v},
        }
    return report


def _report(args: argparse.Namespace) -> int:
    cloud = Cloud(args)
    records = _recorded(cloud, args)
    ledger, bucket = cloud.ledger(), cloud.name("ingest-bucket")
    reports = [_report_of(ledger, bucket, r) for r in records]
    if args.json:
        print_json(reports)
        return _verdict_exit(records)
    for r in reports:
        lines = [f"{r['key']} version {r['version_id']}: {r['status']} {r['reason'] or ''}".rstrip()]
        lines.append(f"  producer {r['producer'] or '?'}, key {r['key_id'] or '?'}, sha256 {r['sha256'] or '?'}")
        if r["detail"]:
            lines.append(f"  detail: {r['detail']}")
        if r["contract"]:
            lines.append(f"  contract: {r['contract']}, {r['rows']} rows valid")
            lines.append(f"  screen: {r['screen']}")
        if r["profile"]:
            profile = r["profile"]
            labels = ", ".join(f"{k} {v:.0%}" for k, v in profile["label_share"].items())
            lines.append(f"  profile: {profile['rows']} rows; labels: {labels or 'none'}")
            nulls = ", ".join(f"{k} {v}" for k, v in profile["nulls"].items())
            lines.append(f"  nulls: {nulls or 'none'}")
        if r["review"]:
            review = r["review"]
            lines.append(f"  reviewed by {review['by']} at {review['at']}: {review['reason']}")
        lines.append(f"  now at: {r['location']}")
        print("\n".join(lines))
    return _verdict_exit(records)


def _upload_arguments(p: argparse.ArgumentParser, version_help: str) -> None:
    p.add_argument("key", help="the object key in the ingest bucket")
    p.add_argument("--version", help=version_help)


def register(verbs) -> None:
    status = verbs.add_parser(
        "status",
        help="verdict, reason code and location of an upload",
        description="Every recorded version of the upload (or --version). Exit code of the newest: 0 ACCEPTED, "
        "3 REJECTED, 4 HELD, 5 awaiting its verdict; 1 when none is recorded.",
    )
    _upload_arguments(status, "only this version")
    json_option(status)
    cloud_options(status)
    status.set_defaults(func=_status)

    review = verbs.add_parser("review", help="release or reject an upload the poisoning screen held")
    review.add_argument("decision", choices=["approve", "reject"])
    _upload_arguments(review, "the held version (needed when several are held)")
    review.add_argument("--reason", required=True, type=reason_text, help="why: recorded with who decided")
    json_option(review)
    cloud_options(review)
    refusal_answers(review, ReviewError)
    review.set_defaults(func=_review)

    report = verbs.add_parser("report", help="the validation and screening report of an upload (exit codes as status)")
    _upload_arguments(report, "only this version")
    json_option(report)
    cloud_options(report)
    report.set_defaults(func=_report)
