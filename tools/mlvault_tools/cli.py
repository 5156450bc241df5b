"""The `mlvault` command line. Verbs are thin: parse, call the library, print."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from mlvault import __version__


def _local_up(args: argparse.Namespace) -> int:
    from localcloud import control

    handle = control.up(
        cdk_out=args.cdk_out,
        state_dir=args.state_dir,
        port=args.port,
        schedule_scale=args.schedule_scale,
        alarm_scale=args.alarm_scale,
    )
    print(
        f"local cloud ready at {handle.endpoint} (region {handle.region}, pid {handle.state['pid']}, "
        f"provisioned in {handle.state['startup_seconds']}s from {args.cdk_out})"
    )
    print('point the CLI and boto3 at it with:  eval "$(mlvault local env)"')
    return 0


def _local_down(args: argparse.Namespace) -> int:
    from localcloud import control

    print("local cloud stopped" if control.down(args.state_dir) else "no local cloud was running")
    return 0


def _local_status(args: argparse.Namespace) -> int:
    from localcloud import control

    report = control.status(control.read(args.state_dir), recent=args.recent)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"local cloud at {report['endpoint']} (region {report['region']}, pid {report['pid']})")
    print("resources:")
    for type_, count in report["resources"].items():
        print(f"  {count:3d}  {type_}")
    print("queues (visible / in flight):")
    for name, depth in report["queues"].items():
        print(f"  {depth['visible']:4d} / {depth['in_flight']:<4d} {name}")
    print("functions:")
    for name, fn in report["functions"].items():
        print(f"  {name}  ({fn['handler']}; layers: {'; '.join(fn['layers'])})")
    print("recent events:")
    for event in report["recent_events"]:
        details = ", ".join(f"{k}={v}" for k, v in event.items() if k not in ("at", "kind"))
        print(f"  {event['at'][11:23]}  {event['kind']:<22} {details}")
    return 0


def _local_env(args: argparse.Namespace) -> int:
    from localcloud import control

    for name, value in control.read(args.state_dir).environment().items():
        print(f"export {name}={value}")
    return 0


# --- producer and operator verbs ----------------------------------------------------------------------------


class _Cloud:
    """Clients and resource names of one stage, on AWS or on the local cloud (--endpoint-url)."""

    def __init__(self, args: argparse.Namespace) -> None:
        import os

        import boto3

        from mlvault_tools.discovery import stage_names

        self.stage = args.stage or os.environ.get("MLVAULT_STAGE", "dev")
        endpoint = args.endpoint_url or os.environ.get("MLVAULT_ENDPOINT_URL")
        self._session = boto3.session.Session(region_name=args.region) if args.region else boto3.session.Session()
        self._endpoint = endpoint
        self.names = stage_names(self.client("ssm"), self.stage)

    def client(self, service: str):
        return self._session.client(service, endpoint_url=self._endpoint)

    def name(self, key: str) -> str:
        from mlvault_tools.discovery import require

        return require(self.names, key, self.stage)

    def ledger(self):
        from mlvault.ledger import Ledger

        return Ledger(self.client("dynamodb"), self.name("ledger-table"))


def _signer(args: argparse.Namespace, cloud: _Cloud | None = None):
    from mlvault.signing.keys import KmsSigner, LocalSigner

    if args.kms_key:
        if cloud is None:
            raise ValueError("--kms-key needs the cloud (KMS signs)")
        return KmsSigner(cloud.client("kms"), args.kms_key, args.key_id)
    if not args.key:
        raise ValueError("give --key PRIVATE_KEY.pem or --kms-key ARN")
    return LocalSigner.from_pem(Path(args.key).read_bytes(), args.key_id)


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
    p.add_argument("--key-id", required=True, help="the registry id of the signing key")
    p.add_argument("--key", help="PEM private key file (ECDSA P-256 or Ed25519)")
    p.add_argument("--kms-key", help="KMS ECC_NIST_P256 key ARN to sign with instead of --key")
    p.add_argument("--validity-minutes", type=int, default=60)


def _sign(args: argparse.Namespace) -> int:
    from datetime import timedelta

    from mlvault_tools.producer import object_key, sign_file

    path = Path(args.file)
    cloud = _Cloud(args) if args.kms_key else None
    claim, envelope = sign_file(
        path,
        key=object_key(args.producer, args.dataset, args.name or path.name),
        producer=args.producer,
        dataset=args.dataset,
        contract_version=args.contract_version,
        signer=_signer(args, cloud),
        validity=timedelta(minutes=args.validity_minutes),
    )
    print(f"object key: {claim.object_key}\nsha256: {claim.sha256}\nx-amz-meta-mlvault-envelope:", file=sys.stderr)
    print(envelope)
    return 0


def _push(args: argparse.Namespace) -> int:
    import time
    from datetime import timedelta

    from mlvault_tools.producer import location, object_key, progress_bar, push, sign_file

    cloud = _Cloud(args)
    path = Path(args.file)
    claim, envelope = sign_file(
        path,
        key=object_key(args.producer, args.dataset, args.name or path.name),
        producer=args.producer,
        dataset=args.dataset,
        contract_version=args.contract_version,
        signer=_signer(args, cloud),
        validity=timedelta(minutes=args.validity_minutes),
    )
    pushed = push(
        cloud.client("s3"),
        path,
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

    from mlvault.ingest.reasons import VerificationError
    from mlvault.trust.producers import load_registry
    from mlvault_tools.producer import verify_offline

    envelope = Path(args.envelope[1:]).read_text().strip() if args.envelope.startswith("@") else args.envelope
    at = datetime.fromisoformat(args.at.replace("Z", "+00:00")) if args.at else datetime.now(UTC)
    try:
        verified = verify_offline(
            Path(args.file), key=args.object_key, envelope=envelope, registry=load_registry(args.registry), at=at
        )
    except VerificationError as err:
        print(f"REJECT {err.reason}: {err.detail}")
        return 1
    print(
        f"ACCEPT signed by {verified.key.id} ({verified.key.algorithm}) for producer {verified.claim.producer}, "
        f"dataset {verified.claim.dataset}, sha256 {verified.claim.sha256}"
    )
    return 0


def _status(args: argparse.Namespace) -> int:
    from mlvault_tools.producer import location, status

    cloud = _Cloud(args)
    records = status(cloud.ledger(), cloud.name("ingest-bucket"), args.key)
    if args.version:
        records = [r for r in records if r.version_id == args.version]
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
        print(f"no upload of {args.key} is recorded in stage {cloud.stage}")
        return 1
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
    from mlvault.ingest.review import ReviewError, request
    from mlvault_tools.producer import status

    cloud = _Cloud(args)
    records = status(cloud.ledger(), cloud.name("ingest-bucket"), args.key)
    held = [r for r in records if r.status == "HELD" and args.version in (None, r.version_id)]
    if len(held) != 1:
        which = f"version {args.version} of " if args.version else ""
        print(f"{len(held)} held {which}{args.key}: " + ("give --version" if held else "nothing to review"))
        return 1
    try:
        result = request(
            cloud.client("lambda"),
            cloud.client("sts"),
            cloud.name("review-function"),
            key=args.key,
            version_id=held[0].version_id,
            decision=args.decision,
            reason=args.reason,
        )
    except ReviewError as err:
        print(err)
        return 1
    where = f" -> s3://{result['lake_bucket']}/{result['lake_key']}" if result["status"] == "ACCEPTED" else ""
    print(f"{args.key} version {held[0].version_id}: {result['status']} by {result['reviewed_by']}{where}")
    return 0


def _report(args: argparse.Namespace) -> int:
    from mlvault.contracts.screen import Profile
    from mlvault_tools.producer import location, status

    cloud = _Cloud(args)
    ledger, bucket = cloud.ledger(), cloud.name("ingest-bucket")
    records = [r for r in status(ledger, bucket, args.key) if args.version in (None, r.version_id)]
    if not records:
        print(f"no upload of {args.key} is recorded in stage {cloud.stage}")
        return 1
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


def _revoke(args: argparse.Namespace) -> int:
    import getpass
    from datetime import UTC, datetime

    cloud = _Cloud(args)
    effective = (
        datetime.fromisoformat(args.effective_at.replace("Z", "+00:00")) if args.effective_at else datetime.now(UTC)
    )
    if effective.tzinfo is None:
        raise ValueError("--effective-at needs a time zone, e.g. 2026-11-25T10:00:00Z")
    registry = Path(args.registry or f"trust/{cloud.stage}.json")
    if registry.is_file():
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


def _contract_check(args: argparse.Namespace) -> int:
    from mlvault.contracts.schema import load_contract
    from mlvault.contracts.screen import Profile, ProfileBuilder, compare
    from mlvault.contracts.validate import check
    from mlvault.ingest.reasons import Reason, VerificationError

    profiling = args.baseline or args.profile_out
    builder = None
    if profiling and (args.contracts / f"{args.dataset}.json").is_file():
        builder = ProfileBuilder(load_contract(args.contracts, args.dataset))
    try:
        report = check(
            Path(args.file),
            dataset=args.dataset,
            directory=args.contracts,
            contract_version=args.contract_version,
            observe=builder.add if builder else None,
        )
    except VerificationError as err:
        print(f"REJECT {err.reason}: {err.detail}")
        return 1
    print(
        f"PASS {args.file}: {report.rows} rows, {len(report.columns)} columns, contract {report.dataset} "
        f"v{report.contract_version} ({report.format})"
    )
    if args.profile_out:
        args.profile_out.write_text(json.dumps(builder.profile.to_json()))
        print(f"profile written to {args.profile_out}")
    if args.baseline:
        screening = builder.contract.screening
        findings = compare(
            builder.profile,
            Profile.from_json(json.loads(args.baseline.read_text())),
            feature_psi=screening.feature_psi,
            label_psi=screening.label_psi,
            parity_increase=screening.parity_increase,
        )
        if findings:
            print(f"{screening.action.upper()} {Reason.POISONING_SUSPECTED}: " + "; ".join(map(str, findings)))
            return 1
        print(f"screen: no shift against the baseline ({args.baseline})")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from mlvault_tools.demo import run

    return run(cdk_out=args.cdk_out, state_dir=args.state_dir, port=args.port)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mlvault",
        description="mlvault: safety-first MLOps on AWS (zero-trust ingest, provenance-rich models).",
    )
    parser.add_argument("--version", action="version", version=f"mlvault {__version__}")
    parser.set_defaults(func=None)
    verbs = parser.add_subparsers(title="commands", metavar="COMMAND")

    def local_options(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--state-dir",
            type=Path,
            default=Path(".mlvault/local"),
            help="where the local cloud keeps its state, logs and events (default: .mlvault/local)",
        )

    local = verbs.add_parser("local", help="the local cloud: the synthesized app running on moto, no AWS account")
    local_verbs = local.add_subparsers(title="local cloud commands", metavar="ACTION", required=True)
    up = local_verbs.add_parser("up", help="start the local cloud and provision it from cdk.out")
    up.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")
    up.add_argument(
        "--schedule-scale",
        type=float,
        default=1.0,
        help="run rate(...) schedules N times faster (default 1: real time)",
    )
    up.add_argument(
        "--alarm-scale",
        type=float,
        help="evaluate CloudWatch alarms with periods N times shorter (default: the schedule scale)",
    )
    up.add_argument("--cdk-out", type=Path, default=Path("cdk.out"), help="the cloud assembly (default: cdk.out)")
    local_options(up)
    up.set_defaults(func=_local_up)
    down = local_verbs.add_parser("down", help="stop the local cloud")
    local_options(down)
    down.set_defaults(func=_local_down)
    status = local_verbs.add_parser("status", help="resources, queues, functions and recent events")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.add_argument("--recent", type=int, default=15, help="how many recent events to show")
    local_options(status)
    status.set_defaults(func=_local_status)
    env = local_verbs.add_parser("env", help="print exports that point boto3 and the CLI at the local cloud")
    local_options(env)
    env.set_defaults(func=_local_env)

    def cloud_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--stage", help="the stage (default: $MLVAULT_STAGE or dev)")
        p.add_argument("--endpoint-url", help="AWS endpoint, e.g. the local cloud's (default: $MLVAULT_ENDPOINT_URL)")
        p.add_argument("--region", help="AWS region (default: the usual AWS configuration)")

    from mlvault_tools import cli_models

    cli_models.register(verbs, cloud_options)

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
    verify.add_argument("--registry", default="trust/dev.json")
    verify.add_argument("--at", help="judge validity at this time (default: now)")
    verify.set_defaults(func=_verify)

    status_verb = verbs.add_parser("status", help="verdict, reason code and location of an upload")
    status_verb.add_argument("key", help="the object key in the ingest bucket")
    status_verb.add_argument("--version", help="only this version")
    status_verb.add_argument("--json", action="store_true")
    cloud_options(status_verb)
    status_verb.set_defaults(func=_status)

    review = verbs.add_parser("review", help="release or reject an upload the poisoning screen held")
    review.add_argument("decision", choices=["approve", "reject"])
    review.add_argument("key", help="the object key in the ingest bucket")
    review.add_argument("--version", help="the held version (needed when several are held)")
    review.add_argument("--reason", required=True, help="why: recorded in the ledger with who decided")
    cloud_options(review)
    review.set_defaults(func=_review)

    report = verbs.add_parser("report", help="the validation and screening report of an upload")
    report.add_argument("key", help="the object key in the ingest bucket")
    report.add_argument("--version", help="only this version")
    cloud_options(report)
    report.set_defaults(func=_report)

    producers = verbs.add_parser("producers", help="producer keys: revoke")
    producer_verbs = producers.add_subparsers(title="producer commands", metavar="ACTION", required=True)
    revoke = producer_verbs.add_parser("revoke", help="revoke a key from a time on, without a redeploy")
    revoke.add_argument("key_id")
    revoke.add_argument("--reason", required=True)
    revoke.add_argument("--effective-at", help="ISO time from which uploads signed by it are refused (default: now)")
    revoke.add_argument("--revoked-by", help="who revokes (default: the current user)")
    revoke.add_argument("--registry", help="registry to check the key id against (default: trust/<stage>.json)")
    cloud_options(revoke)
    revoke.set_defaults(func=_revoke)

    contract = verbs.add_parser("contract", help="data contracts: check a file before you push it")
    contract_verbs = contract.add_subparsers(title="contract commands", metavar="ACTION", required=True)
    contract_check = contract_verbs.add_parser("check", help="validate a file against its dataset's contract")
    contract_check.add_argument("file")
    contract_check.add_argument("--dataset", required=True)
    contract_check.add_argument("--contract-version", help="the version the file was produced for")
    contract_check.add_argument(
        "--contracts", type=Path, default=Path("contracts"), help="the contracts directory (default: contracts)"
    )
    contract_check.add_argument("--baseline", type=Path, help="a baseline profile (JSON) to screen the file against")
    contract_check.add_argument("--profile-out", type=Path, help="write the file's profile (e.g. to make a baseline)")
    contract_check.set_defaults(func=_contract_check)

    bench = verbs.add_parser("bench", help="benchmarks (commands, not tests)")
    bench_verbs = bench.add_subparsers(title="benchmarks", metavar="WHAT", required=True)
    bench_ingest = bench_verbs.add_parser("ingest", help="hashing vs openssl, peak memory, import time, sizes")
    bench_ingest.add_argument("--size-mib", type=int, default=1024, help="size of the test file (default 1 GiB)")
    bench_ingest.add_argument("--cdk-out", type=Path, default=Path("cdk.out"))
    bench_contracts = bench_verbs.add_parser("contracts", help="contract validation vs a bare pyarrow read")
    bench_contracts.add_argument("--rows", type=int, default=5_000_000, help="rows of the 1x file (also 4x)")
    bench_contracts.add_argument("--contracts", type=Path, default=Path("contracts"))
    bench_contracts.add_argument(
        "--peers-python",
        help="a Python with pandas, pandera and great_expectations "
        "(make bench-contracts builds build/bench-venv) to compare with them too",
    )
    bench_contracts.set_defaults(
        func=lambda a: __import__("mlvault_tools.bench", fromlist=["contracts_main"]).contracts_main(
            a.rows, a.contracts, a.peers_python
        )
    )
    bench_ingest.set_defaults(
        func=lambda a: __import__("mlvault_tools.bench", fromlist=["main"]).main(a.cdk_out, a.size_mib)
    )

    demo = verbs.add_parser("demo", help="run the scripted story on a fresh local cloud and print a summary")
    demo.add_argument("--port", type=int, default=0)
    demo.add_argument("--cdk-out", type=Path, default=Path("cdk.out"))
    demo.add_argument("--state-dir", type=Path, default=Path(".mlvault/demo"))
    demo.set_defaults(func=_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.func is None:
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except Exception as err:
        from mlvault_tools.cli_errors import user_facing

        if not user_facing(err):
            raise
        print(f"mlvault: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
