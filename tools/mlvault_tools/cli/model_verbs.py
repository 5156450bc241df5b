"""`mlvault train | runs | models list|show|approve|reject | lineage | verify-model | predict`: the model pipeline,
and predictions of a served model through its function URL."""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import sys
import time
from pathlib import Path

from mlvault.errors import RolloutRefused
from mlvault_tools.cli.base import (
    ERROR,
    NO,
    OK,
    PENDING,
    Cloud,
    DiscoveryError,
    NotDone,
    cloud_options,
    fixed,
    input_file,
    json_option,
    number,
    on_terminal,
    output_directory,
    print_json,
    reason_text,
    refusal_answers,
    table,
)


def _current_step(sfn, execution: str) -> str | None:
    """The state a running execution is in (the last one it entered)."""
    events = sfn.get_execution_history(executionArn=execution, reverseOrder=True, maxResults=20)["events"]
    for event in events:
        entered = event.get("stateEnteredEventDetails")
        if entered:
            return entered["name"]
    return None


def _train(args: argparse.Namespace) -> int:
    from mlvault.training.trigger import start_manual
    from mlvault.wiring import model_dataset_parameter, model_pipeline_parameter

    cloud = Cloud(args)
    sfn = cloud.client("stepfunctions")
    model = cloud.model()  # --model, or the one model trained on --dataset: one the stage trains, before acting
    arn = cloud.name(model_pipeline_parameter(model))
    dataset = cloud.name(model_dataset_parameter(model))
    name = start_manual(sfn, arn, dataset, model)
    execution = f"{arn.replace(':stateMachine:', ':execution:')}:{name}"
    answer: dict = {"run_id": name, "model": model, "dataset": dataset, "execution_arn": execution, "status": "RUNNING"}
    if not args.json:
        print(f"run {name} started ({model} on {dataset})")
    if not args.wait:
        if args.json:
            print_json(answer)
        return OK
    terminal = on_terminal()
    started = time.monotonic()
    while (status := sfn.describe_execution(executionArn=execution))["status"] == "RUNNING":
        if time.monotonic() - started > args.wait:
            if terminal:
                sys.stderr.write("\n")
            answer["step"] = _current_step(sfn, execution)
            if args.json:
                print_json(answer)
            else:
                print(f"run {name}: still running after {args.wait:g}s, at step {answer['step']}")
            return PENDING
        if terminal:
            step = _current_step(sfn, execution)
            sys.stderr.write(f"\r  running: step {step or '-':<16} {time.monotonic() - started:5.0f} s\x1b[K")
            sys.stderr.flush()
        time.sleep(0.5)
    if terminal:
        sys.stderr.write("\n")
    answer["status"] = status["status"]
    if status["status"] != "SUCCEEDED":
        cause = status.get("cause", "")
        with contextlib.suppress(ValueError, AttributeError):
            cause = json.loads(cause).get("errorMessage", cause)
        answer.update(error=status.get("error", ""), cause=cause)
        if args.json:
            print_json(answer)
        else:
            print(f"run {name}: {status['status']} {answer['error']}: {cause}")
        return NO
    state = json.loads(status["output"])["state"]
    rollout = state.get("rollout", {})
    answer.update(
        model_id=state["model_id"],
        artifact_sha256=state["artifact"]["sha256"],
        serving_version=rollout.get("version"),
        percent=rollout.get("percent", 100),
    )
    if args.json:
        print_json(answer)
        return OK
    print(
        f"run {name}: SUCCEEDED -> model {state['model_id']} (sha256 {state['artifact']['sha256'][:16]}...), "
        f"serving version {rollout.get('version')} at {rollout.get('percent', 100)}%"
    )
    return OK


def _ended(run: dict) -> str:
    """How a run ended: the step, the reason and a bounded detail (or its failure reason)."""
    outcome = run.get("outcome") or {}
    if not outcome:
        return run.get("failure", {}).get("reason", "")
    words = [f"at {outcome.get('step', '?')}", outcome.get("reason") or ""]
    detail = f": {outcome['detail'][:120]}" if outcome.get("detail") else ""
    return " ".join(w for w in words if w) + detail


def _accuracy(run: dict):
    """A run's held-out accuracy: its metrics', or (a run its gates failed) the accuracy gate's measure."""
    measured = run.get("metrics", {}).get("heldout_accuracy")
    if measured is None:
        gate = [g for g in run.get("gates", {}).get("results", []) if g["name"] == "min_accuracy"]
        measured = gate[0]["value"] if gate else None
    return measured


def _runs(args: argparse.Namespace) -> int:
    runs = Cloud(args).registry().runs(args.dataset)
    if args.json:
        print_json(runs)
        return OK
    if not runs:
        print("no runs recorded" + (f" for dataset {args.dataset}" if args.dataset else ""))
        return OK
    rows = []
    for run in runs:
        failed = [r["name"] for r in run.get("gates", {}).get("results", []) if not r["passed"]]
        rows.append(
            (
                run["run_id"],
                run["status"],
                run.get("model_id") or "-",
                _accuracy(run),
                f"{run['artifact_digest'][:16]}..." if run.get("artifact_digest") else "-",
                (f"failed gates {', '.join(failed)}; " if failed else "") + (_ended(run) or "-"),
            )
        )
    print(table(rows, ("RUN", "STATUS", "MODEL", "ACCURACY", "ARTIFACT", "ENDED")))
    for run in runs:
        left_out = run.get("manifest", {}).get("left_out")
        if left_out:
            print(f"{run['run_id']}: {_left_out(left_out)}")
    return OK


def _left_out(left_out: dict) -> str:
    """What a bounded manifest left out (mlvault.training.manifest): how much, why, and whose."""
    producers = ", ".join(f"{p} {v['count']} ({v['rows']} rows)" for p, v in left_out["producers"].items())
    return (
        f"left out {left_out['count']} accepted file(s), {left_out['rows']} rows, {left_out['reason']} "
        f"{left_out['max_rows']}: {producers}"
    )


def _models_list(args: argparse.Namespace) -> int:
    models = Cloud(args).registry().models(args.dataset)
    if args.json:
        print_json(models)
        return OK
    if not models:
        print("no registered models" + (f" of dataset {args.dataset}" if args.dataset else ""))
        return OK
    rows = [
        (
            m["model_id"],
            m["status"],
            m["record"]["metrics"].get("heldout_accuracy"),
            len(m["record"]["lineage"]),
            f"{m['record']['artifact']['sha256'][:16]}...",
            m["record"]["run_id"],
        )
        for m in models
    ]
    print(table(rows, ("MODEL", "STATUS", "ACCURACY", "FILES", "ARTIFACT SHA256", "RUN")))
    return OK


def _registered(cloud: Cloud, model_id: str) -> dict:
    model = cloud.registry().model(model_id)
    if model is None:
        raise NotDone(f"no model {model_id} is registered in stage {cloud.stage} (see `mlvault models list`)")
    return model


def _models_show(args: argparse.Namespace) -> int:
    model = _registered(Cloud(args), args.model_id)
    if args.json:
        print_json(model)
        return OK
    r = model["record"]
    lines = [
        f"{model['model_id']}: {model['status']} (record {'intact' if model['record_intact'] else 'TAMPERED'})",
        f"  artifact: s3://{r['artifact']['bucket']}/{r['artifact']['key']}?versionId={r['artifact']['version_id']}",
        f"  sha256 {r['artifact']['sha256']}, {r['artifact']['bytes']} bytes, trainer {r['trainer']}",
        f"  manifest: sha256 {r['manifest']['sha256']}, {r['manifest']['entries']} files, {r['manifest']['rows']} rows",
        *([f"  {_left_out(r['manifest']['left_out'])}"] if r["manifest"].get("left_out") else []),
        f"  code: sha256 {r['code']['sha256']}",
        "  gates: "
        + ", ".join(f"{g['name']} {fixed(g['value'])} (limit {fixed(g['threshold'])})" for g in r["gates"]["results"]),
        f"  signature: {model.get('signature_key', 'none')} by {model.get('signing_key_arn', '-')}",
        f"  lineage: {len(r['lineage'])} lake version(s)",
        *(
            f"    {e['lake_uri']}\n      sha256 {e['sha256']}, producer {e['producer']}, key {e['key_id']}"
            for e in r["lineage"]
        ),
        "  history:",
        *(f"    {h}" for h in model["history"]),
    ]
    print("\n".join(lines))
    return OK


def _approval(args: argparse.Namespace) -> int:
    from mlvault.rollout.canary import decide_approval

    cloud = Cloud(args)
    by = cloud.client("sts").get_caller_identity()["Arn"]
    verdict = decide_approval(
        cloud.client("stepfunctions"),
        cloud.registry(),
        args.model_id,
        approve=args.decision == "approve",
        by=by,
        reason=args.reason,
    )
    if args.json:
        print_json({"model_id": args.model_id, "verdict": verdict, "by": by})
        return OK
    print(f"{args.model_id} {verdict} by {by}" + (": the pipeline deploys it" if verdict == "approved" else ""))
    return OK


def _lineage(args: argparse.Namespace) -> int:
    cloud = Cloud(args)
    registry = cloud.registry()
    if args.model_id:
        lineage = _registered(cloud, args.model_id)["record"]["lineage"]
        if args.json:
            print_json(lineage)
            return OK
        for entry in lineage:
            print(
                f"{entry['lake_uri']}\n  sha256 {entry['sha256']}, producer {entry['producer']}, key {entry['key_id']}"
            )
            for ingest in entry["ingest"]:
                print(f"  uploaded as {ingest}")
        return OK
    models = registry.derived_from(producer=args.producer, key_id=args.key_id, data=args.file)
    if args.json:
        print_json([{"model_id": m["model_id"], "status": m["status"]} for m in models])
        return OK
    if not models:
        print("no registered model was trained on it")
        return OK
    print(table([(m["model_id"], m["status"]) for m in models], ("MODEL", "STATUS")))
    return OK


NOT_SERVABLE = ("REVOKED", "ROLLED_BACK")  # verify-model: verified, but a status that must not serve (exit NO)


def _verify_model(args: argparse.Namespace) -> int:
    from mlvault.attestation.openssf import kms_public_key_pem
    from mlvault.attestation.pinned import attest_registered
    from mlvault.trust.anchors import SigningKey

    cloud = Cloud(args)
    model = _registered(cloud, args.model_id)
    folder = args.out
    folder.mkdir(parents=True, exist_ok=True)
    arn = cloud.name("model-signing-key")
    pem = kms_public_key_pem(cloud.client("kms"), arn)
    expected = args.public_key_sha256 or hashlib.sha256(pem).hexdigest()  # compare it with the bundled anchor
    verified = attest_registered(
        cloud.client("s3"), cloud.client("kms"), model, SigningKey(arn, expected), folder=folder
    )
    code = NO if model["status"] in NOT_SERVABLE else OK
    if args.json:
        print_json(
            {
                "verdict": "VERIFIED",
                "model_id": args.model_id,
                "status": model["status"],
                "servable": code == OK,
                "package_sha256": verified.pin.artifact_digest,
                "signing_key_arn": arn,
                "public_key_sha256": expected,
                "files": verified.digests,
                "folder": str(folder),
            }
        )
        return code
    files = ", ".join(f"{name} {digest[:16]}..." for name, digest in verified.digests.items())
    print(
        f"VERIFIED {args.model_id} ({model['status']}): package sha256 {verified.pin.artifact_digest}, signed by the "
        f"stage's key {arn} (public key sha256 {expected}), record intact\n"
        f"  signed files: {files}\n"
        f"  in {folder}; verify independently: model_signing verify key {verified.path} "
        f"--signature {folder / 'model.sig'} --public_key {folder / 'signing-key.pem'}"
    )
    if code != OK:
        print(f"  but it is {model['status']}: the stage serves it no more")
    return code


# --- predict ----------------------------------------------------------------------------------------------------

SERVED, CLIENT_ERROR, NOT_SERVED = OK, NO, ERROR  # predict's exit codes: a client error is a verdict on the rows


def read_rows(text: str, source: str) -> list:
    """Rows from `{"rows": [...]}`, a JSON list, or JSON Lines (one object per line); ValueError naming where."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError:
        rows = []
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise ValueError(f"{source}:{number}: not JSON, nor JSON Lines ({err.msg})") from None
        return rows
    if isinstance(document, dict) and set(document) == {"rows"}:
        document = document["rows"]
    if isinstance(document, dict):  # one row: a JSON Lines file of one line
        return [document]
    if not isinstance(document, list):
        raise ValueError(f'{source}: expected {{"rows": [...]}}, a list of rows or JSON Lines')
    return document


def _rows_file(value: str):
    return value if value == "-" else input_file("rows as JSON or JSON Lines, or - for stdin")(value)


def _predict(args: argparse.Namespace) -> int:
    from mlvault.wiring import function_url_parameter

    source = "stdin" if args.file == "-" else str(args.file)
    try:
        text = sys.stdin.read() if args.file == "-" else args.file.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"{source} is not UTF-8 text (expected JSON rows)") from None
    try:
        rows = read_rows(text, source)
    except ValueError as err:
        print(f"CLIENT_ERROR NOT_JSON: {err}")
        return CLIENT_ERROR
    cloud = Cloud(args)
    url = cloud.name(function_url_parameter(args.model))
    try:
        answer = cloud.signed_post(url, json.dumps({"rows": rows}).encode(), timeout=args.timeout)
    except DiscoveryError as err:
        print(f"mlvault: UNREACHABLE: {err}", file=sys.stderr)
        return NOT_SERVED
    try:
        body = json.loads(answer.body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        body = None
    if args.json:
        print(json.dumps(body if body is not None else {"status": answer.status, "body": answer.body.decode()}))
    error = body.get("error") if isinstance(body, dict) else None
    if answer.status == 200 and isinstance(body, dict) and "predictions" in body:
        if not args.json:
            model = body["model"]
            print(
                f"{model['id']} (package sha256 {model['digest'][:16]}..., version {model['version']}): "
                f"{len(body['predictions'])} prediction(s)",
                file=sys.stderr,
            )
            print("\n".join(map(str, body["predictions"])))
        return SERVED
    if isinstance(error, dict) and error.get("kind") == "client":
        if not args.json:
            where = f" at {error['field']}" if error.get("field") else ""
            print(f"CLIENT_ERROR {error['code']}{where}: {error['message']}")
        return CLIENT_ERROR
    if not args.json:
        if isinstance(error, dict):  # kind "model": the pinned model is refused
            print(f"REFUSED {error['code']}: {error['message']}")
        else:  # Lambda's own answer: not authorized (403), the function failed (502), ...
            body = " ".join(answer.body[:300].decode(errors="replace").split())
            print(f"mlvault: NOT_SERVED: HTTP {answer.status} from {url}: {body}", file=sys.stderr)
    if isinstance(error, dict):
        return CLIENT_ERROR  # the model is refused: a verdict, as a client error is
    return NOT_SERVED


def register(verbs) -> None:
    train = verbs.add_parser(
        "train",
        help="start a model's pipeline now",
        description="Checks the model against the stage's models, then starts a run. With --wait: exit 0 the run "
        "deployed its model, 3 the run failed (gates, refusal, rollback), 5 still running; 1 nothing started.",
    )
    which_model = train.add_mutually_exclusive_group(required=True)
    which_model.add_argument("--model", help="the model's name (cdk.json models), e.g. credit")
    which_model.add_argument("--dataset", help="the dataset of the one model trained on it")
    train.add_argument(
        "--wait",
        type=number(float, minimum=0),
        default=0,
        help="wait up to N seconds for the run to end (on a terminal, the step it is in)",
    )
    json_option(train)
    cloud_options(train)
    train.set_defaults(func=_train)

    runs = verbs.add_parser("runs", help="every training run, winners and losers, and how each ended")
    runs.add_argument("--dataset")
    json_option(runs)
    cloud_options(runs)
    runs.set_defaults(func=_runs)

    models = verbs.add_parser("models", help="registered models: list, show")
    actions = models.add_subparsers(title="model commands", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="every registered model")
    listing.add_argument("--dataset")
    json_option(listing)
    cloud_options(listing)
    listing.set_defaults(func=_models_list)
    show = actions.add_parser("show", help="lineage, gates, signature and history of a model")
    show.add_argument("model_id", help="e.g. iris/3")
    json_option(show)
    cloud_options(show)
    show.set_defaults(func=_models_show)

    for decision in ("approve", "reject"):
        decide = actions.add_parser(decision, help=f"{decision} a signed model waiting for approval (prod)")
        decide.add_argument("model_id")
        decide.add_argument("--reason", required=True, type=reason_text)
        json_option(decide)
        cloud_options(decide)
        refusal_answers(decide, RolloutRefused, "REFUSED")
        decide.set_defaults(func=_approval, decision=decision)

    lineage = verbs.add_parser("lineage", help="model -> data files and producers, or data -> models")
    which = lineage.add_mutually_exclusive_group(required=True)
    which.add_argument("--model", dest="model_id", help="the data a model was trained on")
    which.add_argument("--producer", help="models trained on this producer's data")
    which.add_argument("--key-id", help="models trained on data signed by this key")
    which.add_argument("--file", help="models trained on this file (lake or ingest key or URI)")
    json_option(lineage)
    cloud_options(lineage)
    lineage.set_defaults(func=_lineage)

    verify = verbs.add_parser(
        "verify-model",
        help="verify a model's artifact, signature and record, offline",
        description="Exit 0 VERIFIED; 3 refused (its reason code), or verified but REVOKED or ROLLED_BACK.",
    )
    verify.add_argument("model_id")
    verify.add_argument(
        "--out", type=output_directory, default=Path("model-check"), help="where to keep the verified files"
    )
    verify.add_argument(
        "--public-key-sha256",
        help="the SHA-256 the key's public key must have (the functions' bundled anchor); default: as KMS shows it",
    )
    json_option(verify)
    cloud_options(verify)
    refusal_answers(verify, RolloutRefused, "REFUSED")
    verify.set_defaults(func=_verify_model)

    predict = verbs.add_parser(
        "predict",
        help="predictions of a model's live alias, through its function URL (SigV4-signed)",
        description='Reads rows ({"rows": [...]}, a JSON list, or JSON Lines) and POSTs them to the model\'s function '
        "URL. Exit 0: served (one prediction a line); 3: a client error (its code and field) or the model is "
        "refused (its reason code); 1: the URL is unreachable or refuses the caller.",
    )
    predict.add_argument("--model", required=True, help="the model's name (cdk.json models), e.g. credit")
    predict.add_argument("file", metavar="FILE|-", type=_rows_file, help="the rows, or - for stdin")
    predict.add_argument("--json", action="store_true", help="print the function's JSON answer")
    predict.add_argument("--timeout", type=number(float, above=0), default=30.0, help="seconds to wait for the answer")
    cloud_options(predict)
    predict.set_defaults(func=_predict)
