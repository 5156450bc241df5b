"""`mlvault contract check`: a file against its dataset's data contract (and a baseline), before it is pushed."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from mlvault.errors import ContractReason, VerificationError
from mlvault_tools.cli.base import refusal_answers


def _check(args: argparse.Namespace) -> int:
    from mlvault.contracts.schema import load_contract
    from mlvault.contracts.screen import Profile, ProfileBuilder, compare
    from mlvault.contracts.validate import check

    profiling = args.baseline or args.profile_out
    builder = None
    if profiling and (args.contracts / f"{args.dataset}.json").is_file():
        builder = ProfileBuilder(load_contract(args.contracts, args.dataset))
    report = check(
        Path(args.file),
        dataset=args.dataset,
        directory=args.contracts,
        contract_version=args.contract_version,
        observe=builder.add if builder else None,
    )
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
            print(f"{screening.action.upper()} {ContractReason.POISONING_SUSPECTED}: " + "; ".join(map(str, findings)))
            return 1
        print(f"screen: no shift against the baseline ({args.baseline})")
    return 0


def register(verbs) -> None:
    contract = verbs.add_parser("contract", help="data contracts: check a file before you push it")
    actions = contract.add_subparsers(title="contract commands", metavar="ACTION", required=True)
    check = actions.add_parser("check", help="validate a file against its dataset's contract")
    check.add_argument("file")
    check.add_argument("--dataset", required=True)
    check.add_argument("--contract-version", help="the version the file was produced for")
    check.add_argument(
        "--contracts", type=Path, default=Path("contracts"), help="the contracts directory (default: contracts)"
    )
    check.add_argument("--baseline", type=Path, help="a baseline profile (JSON) to screen the file against")
    check.add_argument("--profile-out", type=Path, help="write the file's profile (e.g. to make a baseline)")
    refusal_answers(check, VerificationError, "REJECT")
    check.set_defaults(func=_check)
