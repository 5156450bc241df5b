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
from mlvault_tools.cli.base import Cloud, DiscoveryError, cloud_options, refusal_answers


def _train(args: argparse.Namespace) -> int:
    from mlvault.training.trigger import start_manual
    from mlvault.wiring import model_dataset_parameter, model_pipeline_parameter

    cloud = Cloud(args)
    sfn = cloud.client("stepfunctions")
    model = cloud.model()  # --model, or the one model trained on --dataset
    arn = cloud.name(model_pipeline_parameter(model))
    name = start_manual(sfn, arn, cloud.name(model_dataset_parameter(model)), model)
    print(f"run {name} started")
    if not args.wait:
        return 0
    execution = f"{arn.replace(':stateMachine:', ':execution:')}:{name}"
    deadline = time.monotonic() + args.wait
    while (status := sfn.describe_execution(executionArn=execution))["status"] == "RUNNING":
        if time.monotonic() > deadline:
            print(f"still running after {args.wait}s")
            return 1
        time.sleep(0.5)
    if status["status"] != "SUCCEEDED":
        cause = status.get("cause", "")
        with contextlib.suppress(ValueError, AttributeError):
            cause = json.loads(cause).get("errorMessage", cause)
        print(f"run {name}: {status['status']} {status.get('error', '')}: {cause}")
        return 1
    state = json.loads(status["output"])["state"]
    rollout = state.get("rollout", {})
    print(
        f"run {name}: SUCCEEDED -> model {state['model_id']} (sha256 {state['artifact']['sha256'][:16]}...), "
        f"serving version {rollout.get('version')} at {rollout.get('percent', 100)}%"
    )
    return 0


def _runs(args: argparse.Namespace) -> int:
    runs = Cloud(args).registry().runs(args.dataset)
    if args.json:
        print(json.dumps(runs, indent=2, default=str))
        return 0
    for run in runs:
        accuracy = run.get("metrics", {}).get("heldout_accuracy")
        outcome = run.get("outcome") or {}
        failure = "" if outcome else run.get("failure", {}).get("reason", "")
        failed = [r["name"] for r in run.get("gates", {}).get("results", []) if not r["passed"]]
        ended = ""
        if outcome:
            why = f" {outcome['reason']}" if outcome.get("reason") else ""
            detail = f": {outcome['detail'][:160]}" if outcome.get("detail") else ""
            ended = f", at {outcome.get('step', '?')}{why}{detail}"
        print(
            f"{run['run_id']}: {run['status']}"
            + (f", model {run['model_id']}" if run.get("model_id") else "")
            + (f", accuracy {accuracy:.3f}" if isinstance(accuracy, float) else "")
            + (f", artifact {run['artifact_digest'][:16]}..." if run.get("artifact_digest") else "")
            + (f", failed gates {', '.join(failed)}" if failed else "")
            + (f", {failure}" if failure else "")
            + ended
        )
    return 0


def _models_list(args: argparse.Namespace) -> int:
    models = Cloud(args).registry().models(args.dataset)
    if args.json:
        print(json.dumps(models, indent=2, default=str))
        return 0
    for m in models:
        r = m["record"]
        print(
            f"{m['model_id']}: {m['status']}, accuracy {r['metrics'].get('heldout_accuracy')}, "
            f"{len(r['lineage'])} data files, artifact sha256 {r['artifact']['sha256'][:16]}..., run {r['run_id']}"
        )
    return 0


def _models_show(args: argparse.Namespace) -> int:
    model = Cloud(args).registry().model(args.model_id)
    if model is None:
        print(f"no model {args.model_id}")
        return 1
    if args.json:
        print(json.dumps(model, indent=2, default=str))
        return 0
    r = model["record"]
    lines = [
        f"{model['model_id']}: {model['status']} (record {'intact' if model['record_intact'] else 'TAMPERED'})",
        f"  artifact: s3://{r['artifact']['bucket']}/{r['artifact']['key']}?versionId={r['artifact']['version_id']}",
        f"  sha256 {r['artifact']['sha256']}, {r['artifact']['bytes']} bytes, trainer {r['trainer']}",
        f"  manifest: sha256 {r['manifest']['sha256']}, {r['manifest']['entries']} files, {r['manifest']['rows']} rows",
        f"  code: sha256 {r['code']['sha256']}",
        "  gates: " + ", ".join(f"{g['name']} {g['value']} (limit {g['threshold']})" for g in r["gates"]["results"]),
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
    return 0


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
    print(f"{args.model_id} {verdict} by {by}" + (": the pipeline deploys it" if verdict == "approved" else ""))
    return 0


def _lineage(args: argparse.Namespace) -> int:
    registry = Cloud(args).registry()
    if args.model_id:
        model = registry.model(args.model_id)
        if model is None:
            print(f"no model {args.model_id}")
            return 1
        for entry in model["record"]["lineage"]:
            print(
                f"{entry['lake_uri']}\n  sha256 {entry['sha256']}, producer {entry['producer']}, key {entry['key_id']}"
            )
            for ingest in entry["ingest"]:
                print(f"  uploaded as {ingest}")
        return 0
    models = registry.derived_from(producer=args.producer, key_id=args.key_id, data=args.file)
    for m in models:
        print(f"{m['model_id']}: {m['status']}")
    if not models:
        print("no registered model was trained on it")
    return 0


def _verify_model(args: argparse.Namespace) -> int:
    from mlvault.attestation.openssf import kms_public_key_pem
    from mlvault.attestation.pinned import attest_registered
    from mlvault.trust.anchors import SigningKey

    cloud = Cloud(args)
    model = cloud.registry().model(args.model_id)
    folder = Path(args.out)
    folder.mkdir(parents=True, exist_ok=True)
    arn = cloud.name("model-signing-key")
    pem = kms_public_key_pem(cloud.client("kms"), arn)
    expected = args.public_key_sha256 or hashlib.sha256(pem).hexdigest()  # compare it with the bundled anchor
    verified = attest_registered(
        cloud.client("s3"), cloud.client("kms"), model, SigningKey(arn, expected), folder=folder
    )
    files = ", ".join(f"{name} {digest[:16]}..." for name, digest in verified.digests.items())
    print(
        f"VERIFIED {args.model_id} ({model['status']}): package sha256 {verified.pin.artifact_digest}, signed by the "
        f"stage's key {arn} (public key sha256 {expected}), record intact\n"
        f"  signed files: {files}\n"
        f"  in {folder}; verify independently: model_signing verify key {verified.path} "
        f"--signature {folder / 'model.sig'} --public_key {folder / 'signing-key.pem'}"
    )
    return 0


# --- predict ----------------------------------------------------------------------------------------------------

SERVED, CLIENT_ERROR, NOT_SERVED = 0, 1, 2  # predict's exit codes


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


def _predict(args: argparse.Namespace) -> int:
    from mlvault.wiring import function_url_parameter

    source = "stdin" if args.file == "-" else args.file
    text = sys.stdin.read() if args.file == "-" else Path(args.file).read_text(encoding="utf-8")
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
        print(f"UNREACHABLE: {err}", file=sys.stderr)
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
            print(f"NOT_SERVED: HTTP {answer.status} from {url}: {answer.body[:300].decode(errors='replace')}")
    return NOT_SERVED


def register(verbs) -> None:
    train = verbs.add_parser("train", help="start a model's pipeline now")
    which_model = train.add_mutually_exclusive_group(required=True)
    which_model.add_argument("--model", help="the model's name (cdk.json models), e.g. credit")
    which_model.add_argument("--dataset", help="the dataset of the one model trained on it")
    train.add_argument("--wait", type=float, default=0, help="wait up to N seconds for the run to finish")
    cloud_options(train)
    train.set_defaults(func=_train)

    runs = verbs.add_parser("runs", help="every training run, winners and losers, and how each ended")
    runs.add_argument("--dataset")
    runs.add_argument("--json", action="store_true")
    cloud_options(runs)
    runs.set_defaults(func=_runs)

    models = verbs.add_parser("models", help="registered models: list, show")
    actions = models.add_subparsers(title="model commands", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="every registered model")
    listing.add_argument("--dataset")
    listing.add_argument("--json", action="store_true")
    cloud_options(listing)
    listing.set_defaults(func=_models_list)
    show = actions.add_parser("show", help="lineage, gates, signature and history of a model")
    show.add_argument("model_id", help="e.g. iris/3")
    show.add_argument("--json", action="store_true")
    cloud_options(show)
    show.set_defaults(func=_models_show)

    for decision in ("approve", "reject"):
        decide = actions.add_parser(decision, help=f"{decision} a signed model waiting for approval (prod)")
        decide.add_argument("model_id")
        decide.add_argument("--reason", required=True)
        cloud_options(decide)
        refusal_answers(decide, RolloutRefused, "REFUSED")
        decide.set_defaults(func=_approval, decision=decision)

    lineage = verbs.add_parser("lineage", help="model -> data files and producers, or data -> models")
    which = lineage.add_mutually_exclusive_group(required=True)
    which.add_argument("--model", dest="model_id", help="the data a model was trained on")
    which.add_argument("--producer", help="models trained on this producer's data")
    which.add_argument("--key-id", help="models trained on data signed by this key")
    which.add_argument("--file", help="models trained on this file (lake or ingest key or URI)")
    cloud_options(lineage)
    lineage.set_defaults(func=_lineage)

    verify = verbs.add_parser("verify-model", help="verify a model's artifact, signature and record, offline")
    verify.add_argument("model_id")
    verify.add_argument("--out", default="model-check", help="where to keep the verified files")
    verify.add_argument(
        "--public-key-sha256",
        help="the SHA-256 the key's public key must have (the functions' bundled anchor); default: as KMS shows it",
    )
    cloud_options(verify)
    refusal_answers(verify, RolloutRefused, "REFUSED")
    verify.set_defaults(func=_verify_model)

    predict = verbs.add_parser(
        "predict",
        help="predictions of a model's live alias, through its function URL (SigV4-signed)",
        description='Reads rows ({"rows": [...]}, a JSON list, or JSON Lines) and POSTs them to the model\'s function '
        "URL. Exit 0: served (one prediction a line); 1: a client error (its code and field); 2: the model is "
        "refused, or the URL is unreachable or refuses the caller.",
    )
    predict.add_argument("--model", required=True, help="the model's name (cdk.json models), e.g. credit")
    predict.add_argument("file", metavar="FILE|-", help="the rows, or - for stdin")
    predict.add_argument("--json", action="store_true", help="print the function's JSON answer")
    predict.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the answer")
    cloud_options(predict)
    predict.set_defaults(func=_predict)
