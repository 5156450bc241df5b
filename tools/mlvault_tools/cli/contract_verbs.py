"""`mlvault contract check`: a file against its dataset's data contract (and a baseline), before it is pushed;
`import` / `export`: the contract as an ODCS v3 document and back; `init`: a draft contract from a sample file."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from mlvault.errors import ContractReason, VerificationError
from mlvault_tools.cli.base import (
    HELD,
    NO,
    OK,
    input_directory,
    input_file,
    json_file,
    json_option,
    number,
    output_directory,
    output_file,
    print_json,
    refusal_answers,
)

CONTRACTS = input_directory("the contracts directory")


def _check(args: argparse.Namespace) -> int:
    from mlvault.contracts.schema import load_contract
    from mlvault.contracts.screen import Profile, ProfileBuilder
    from mlvault.contracts.validate import check

    profiling = args.baseline is not None or args.profile_out
    builder = None
    if profiling and (args.contracts / f"{args.dataset}.json").is_file():
        builder = ProfileBuilder(load_contract(args.contracts, args.dataset))
    baseline = None
    if args.baseline is not None:
        try:
            baseline = Profile.from_json(args.baseline)
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise ValueError(
                f"--baseline is not a profile written by `mlvault contract check --profile-out` ({err!r})"
            ) from None
    report = check(
        args.file,
        dataset=args.dataset,
        directory=args.contracts,
        contract_version=args.contract_version,
        observe=builder.add if builder else None,
    )
    answer: dict = {
        "verdict": "PASS",
        "file": str(args.file),
        "rows": report.rows,
        "columns": len(report.columns),
        "dataset": report.dataset,
        "contract_version": report.contract_version,
        "format": report.format,
    }
    lines = [
        f"PASS {args.file}: {report.rows} rows, {len(report.columns)} columns, contract {report.dataset} "
        f"v{report.contract_version} ({report.format})"
    ]
    if args.profile_out:
        args.profile_out.write_text(json.dumps(builder.profile.to_json()))
        answer["profile_out"] = str(args.profile_out)
        lines.append(f"profile written to {args.profile_out}")
    code = OK
    if baseline is not None:
        code = _screen(builder, baseline, answer, lines)
    if args.json:
        print_json(answer)
    else:
        print("\n".join(lines))
    return code


def _screen(builder, baseline, answer: dict, lines: list[str]) -> int:
    """The poisoning screen against the baseline, as ingest runs it: its minimums, and each check it skipped."""
    from mlvault.contracts.screen import HOLD, screen_batch

    screening = builder.contract.screening
    try:
        result = screen_batch(builder.profile, baseline, screening)
    except KeyError as err:  # a baseline of another contract: it lacks a feature or group this one has
        raise ValueError(f"--baseline has no profile of {err}: not a baseline of this dataset's contract") from None
    answer["screen"] = {
        "screened": result.screened,
        "action": result.action,
        "findings": [str(f) for f in result.findings],
        "skipped": [s.note for s in result.skipped],
    }
    lines.extend(f"screen: {note}" for note in answer["screen"]["skipped"])
    if not result.screened:
        lines.append("screen: not screened here; ingest screens it in the producer's rolling window of small batches")
        return OK
    if result.findings:
        verdict = result.action.upper()
        answer["verdict"] = verdict
        lines.append(f"{verdict} {ContractReason.POISONING_SUSPECTED}: " + "; ".join(answer["screen"]["findings"]))
        return HELD if result.action == HOLD else NO
    lines.append("screen: no shift against the baseline" + (" in the checks it ran" if result.skipped else ""))
    return OK


def _import(args: argparse.Namespace) -> int:
    from mlvault_tools.contract_file import column_summary, contract_path, contract_text, write_new
    from mlvault_tools.odcs_import import import_odcs, read_document
    from mlvault_tools.odcs_map import dump_yaml, metadata_header, metadata_path

    imported = import_odcs(
        read_document(Path(args.file)),
        dataset=args.dataset,
        source=str(args.file),
        format_=args.format,
        object_name=args.object,
        null_values=args.null_value,
        contracts_dir=args.contracts,
    )
    target, kept = contract_path(args.contracts, args.dataset), metadata_path(args.contracts, args.dataset)
    write_new(target, contract_text(imported.document), force=args.force)
    contract = imported.contract
    print(
        f"imported {args.file} as {target}: {contract.format}, {len(contract.columns)} columns, " + "rows "
        f"{contract.min_rows} to {contract.max_rows if contract.max_rows is not None else 'any'}"
    )
    for column in contract.columns:
        print(f"  {column_summary(column)}")
    if imported.metadata:
        kept.write_text(metadata_header(target, args.file) + dump_yaml(imported.metadata))
        print(f"kept as metadata in {kept} (export merges it back): {', '.join(imported.metadata_summary())}")
    elif kept.exists():
        kept.unlink()
        print(f"removed {kept}: the document has no metadata beyond the contract")
    for note in imported.notes:
        print(f"note: {note}")
    print(f"next: review {target}, then `mlvault contract check FILE --dataset {args.dataset}` on a real file")
    return 0


def _export(args: argparse.Namespace) -> int:
    from mlvault_tools.contract_file import contract_path, read_contract, write_new
    from mlvault_tools.odcs_export import export_odcs, export_text
    from mlvault_tools.odcs_map import EXPORT_VERSION, load_metadata, metadata_path

    contract, descriptions = read_contract(args.contracts, args.dataset)
    kept = metadata_path(args.contracts, args.dataset)
    metadata = load_metadata(kept) if kept.is_file() else None
    doc, warnings = export_odcs(contract, descriptions, metadata)
    source = f"{contract_path(args.contracts, args.dataset)}" + (f" and {kept}" if metadata else "")
    text = export_text(
        doc,
        f"ODCS {EXPORT_VERSION} data contract of mlvault dataset {args.dataset}, exported by "
        f"`mlvault contract export` from {source}",
    )
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if args.out is None:
        sys.stdout.write(text)
    else:
        write_new(args.out, text, force=args.force)
        print(f"wrote {args.out} (ODCS {EXPORT_VERSION}) from {source}")
    return 0


def _init(args: argparse.Namespace) -> int:
    from mlvault_tools.contract_draft import draft
    from mlvault_tools.contract_file import contract_path, contract_text, write_new

    drafted = draft(
        Path(args.file),
        dataset=args.dataset,
        format_=args.format,
        delimiter=args.delimiter,
        null_values=args.null_value,
        max_allowed=args.max_allowed,
    )
    target = contract_path(args.contracts, args.dataset)
    write_new(target, contract_text(drafted.document), force=args.force)
    print(f"drafted {target} from {args.file} ({drafted.rows} rows, one pass); each guess and why, to review:")
    for line in drafted.lines:
        print(f"  {line}")
    print(f"next: tighten {target}, then `mlvault contract check {args.file} --dataset {args.dataset}`")
    return 0


def _contracts_option(p: argparse.ArgumentParser, *, writes: bool = False) -> None:
    p.add_argument(
        "--contracts",
        type=output_directory if writes else CONTRACTS,
        default=Path("contracts"),
        help="the contracts directory (default: contracts)",
    )


def register(verbs) -> None:
    contract = verbs.add_parser(
        "contract", help="data contracts: check a file before you push it; ODCS import and export; draft one"
    )
    actions = contract.add_subparsers(title="contract commands", metavar="ACTION", required=True)
    check = actions.add_parser(
        "check",
        help="validate a file against its dataset's contract",
        description="Exit 0 PASS; 3 REJECT (its reason code), or the screen would reject it; 4 the screen would "
        "hold it for review.",
    )
    check.add_argument("file", type=input_file("a CSV, Parquet or JSON Lines file"))
    check.add_argument("--dataset", required=True)
    check.add_argument("--contract-version", help="the version the file was produced for")
    _contracts_option(check)
    check.add_argument(
        "--baseline",
        type=json_file("a profile written by --profile-out"),
        help="a baseline profile (JSON, from --profile-out) to screen the file against, as ingest does",
    )
    check.add_argument(
        "--profile-out", type=output_file("where to write the profile"), help="write the file's profile (a baseline)"
    )
    json_option(check)
    refusal_answers(check, VerificationError, "REJECT")
    check.set_defaults(func=_check)
    _register_odcs(actions)


def _register_odcs(actions) -> None:
    from mlvault_tools.contract_errors import DraftError, OdcsError

    formats = ("csv", "parquet", "jsonl")
    odcs = actions.add_parser("import", help="write contracts/D.json from an ODCS v3 document (YAML or JSON)")
    odcs.add_argument(
        "file", type=input_file("an ODCS document, YAML or JSON"), help="the ODCS document (v3.0.2 or v3.1.0)"
    )
    odcs.add_argument("--dataset", required=True, help="the mlvault dataset it becomes")
    odcs.add_argument("--object", help="the schema object to import, when the document has several")
    odcs.add_argument("--format", choices=formats, help="the file format, when the document does not say")
    odcs.add_argument(
        "--null-value", action="append", help="a CSV null token (repeatable), when the document does not say"
    )
    odcs.add_argument("--force", action="store_true", help="overwrite an existing contract")
    _contracts_option(odcs, writes=True)
    refusal_answers(odcs, OdcsError, "REFUSED")
    odcs.set_defaults(func=_import)
    export = actions.add_parser("export", help="a dataset's contract as an ODCS v3.1.0 document")
    export.add_argument("dataset")
    export.add_argument(
        "--out", type=output_file("where to write the document"), help="write it to this file (default: stdout)"
    )
    export.add_argument("--force", action="store_true", help="overwrite --out")
    _contracts_option(export)
    export.set_defaults(func=_export)
    init = actions.add_parser("init", help="draft contracts/D.json from a sample file, in one streaming pass")
    init.add_argument(
        "file", type=input_file("a sample CSV, Parquet or JSON Lines file"), help="a sample file: CSV, Parquet or JSONL"
    )
    init.add_argument("--dataset", required=True)
    init.add_argument("--format", choices=formats, help="default: from the file name")
    init.add_argument("--delimiter", help="CSV: the delimiter (default: guessed from the header)")
    init.add_argument("--null-value", action="append", help="CSV: a null token, repeatable (default: the empty cell)")
    init.add_argument(
        "--max-allowed",
        type=number(int, minimum=0),
        default=20,
        help="the most distinct values drafted as `allowed` (default: 20)",
    )
    init.add_argument("--force", action="store_true", help="overwrite an existing contract")
    _contracts_option(init, writes=True)
    refusal_answers(init, DraftError, "REFUSED")
    init.set_defaults(func=_init)
