"""`mlvault demo`: the scripted story, run through the deployed wiring of a fresh local cloud.

Each step checks what it shows; the demo exits non-zero when the system does not behave as told. The steps of
ingest and of the built-in iris model are here; a team's own model is a chapter of its own (demo_credit), on the
shared machinery of demo_story.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any

from localcloud import control
from mlvault.wiring import NAMESPACE, SERVE_ALIAS, Dimension, Env, Metric
from mlvault_tools.demo_credit import CreditChapter
from mlvault_tools.demo_story import (
    DATASET,
    MAX_DRIFTED_REQUESTS,
    MODEL,
    PRODUCER,
    SERVE_FUNCTION,
    STAGE,
    Step,
    StoryError,
    wait_for,
)
from mlvault_tools.samples import iris_batch, iris_csv

IRIS = iris_csv(600, 1)  # satisfies contracts/iris.json; with the next clean batch, the learned baseline


class Story(CreditChapter):
    def provisioned(self) -> str:
        counts = control.status(self.cloud, recent=0)["resources"]
        total = sum(counts.values())
        return (
            f"{total} resources of {len(counts)} types from {len(self.cloud.state['resources'])} stacks "
            f"in {self.cloud.state['startup_seconds']}s"
        )

    def signed_upload_lands_in_the_lake(self) -> str:
        key, version, started = self.push("batch-0001.csv", IRIS)
        record = self.verdict(key, version)
        took = time.monotonic() - started
        if record["status"] != "ACCEPTED":
            raise StoryError(f"a validly signed upload was {record['status']} ({record.get('reason')})")
        head = self.s3.head_object(
            Bucket=record["lake_bucket"], Key=record["lake_key"], VersionId=record["lake_version"]
        )
        return (
            f"{key} signed by {record['key_id']} -> S3 notification -> SQS -> verify -> ACCEPTED in "
            f"{took:.2f}s\n       lake: {record['lake_key'][:60]}... ({head['ObjectLockMode']}, "
            f"version {record['lake_version'][:8]}...)"
        )

    def tampered_upload_is_quarantined(self) -> str:
        tampered = IRIS[:-3] + bytes([IRIS[-3] ^ 1]) + IRIS[-2:]  # one bit flipped after signing, same size
        key, version, _ = self.push("batch-0002.csv", IRIS, tamper=tampered)
        return self._rejected(key, version, "DIGEST_MISMATCH")

    def unsigned_upload_is_quarantined(self) -> str:
        key, version, _ = self.push("batch-0003.csv", IRIS, sign_it=False)
        return self._rejected(key, version, "MISSING_SIGNATURE")

    def contract_breach_is_quarantined(self) -> str:
        lines = IRIS.split(b"\n")
        lines[42] = lines[42].replace(b",,", b',=HYPERLINK("http://x"),', 1)  # validly signed, bad content
        key, version, _ = self.push("batch-0004.csv", b"\n".join(lines))
        return self._rejected(key, version, "FORMULA_INJECTION")

    def poisoned_batch_is_held(self) -> str:
        key, version, _ = self.push("batch-0005.csv", iris_csv(600, 2))  # completes the learned baseline
        if self.verdict(key, version)["status"] != "ACCEPTED":
            raise StoryError(f"a clean batch was not accepted: {self.verdict(key, version)}")
        key, version, _ = self.push("batch-0006.csv", iris_csv(600, 3))
        clean = self.verdict(key, version)
        if clean["status"] != "ACCEPTED":
            raise StoryError(f"a fresh clean batch raised a false alarm: {clean.get('detail')}")
        key, version, _ = self.push("batch-0007.csv", iris_csv(600, 4, flip=0.3))  # 30% of labels flipped
        held = self.verdict(key, version)
        if held["status"] != "HELD":
            raise StoryError(f"a batch with 30% flipped labels was {held['status']}, not HELD")
        self.s3.head_object(Bucket=held["quarantine_bucket"], Key=held["quarantine_key"])
        worst = held["detail"].split(";")[0]
        return (
            f"clean batch-0006 -> ACCEPTED ({clean['screen'][:40]}...)\n"
            f"       batch-0007, validly signed, 30% labels flipped -> HELD POISONING_SUSPECTED: {worst}...\n"
            f"       kept out of the lake (and training) at quarantine {held['quarantine_key'][:48]}..."
        )

    def reviewer_rejects_the_held_batch(self) -> str:
        from mlvault.errors import ReviewError
        from mlvault_tools.review_client import request_review as request

        key = f"producers/{PRODUCER}/{DATASET}/batch-0007.csv"
        (item,) = [i for i in self._versions(key) if i["status"]["S"] == "HELD"]
        function = self.cloud.physical_id("-ingest", "AWS::Lambda::Function", "ReviewFunction")
        try:
            result = request(
                self.cloud.client("lambda"),
                self.cloud.client("sts"),
                function,
                key=key,
                version_id=item["version_id"]["S"],
                decision="reject",
                reason="labels disagree with the producer's own QA",
            )
        except ReviewError as err:
            raise StoryError(str(err)) from None
        if result["status"] != "REJECTED":
            raise StoryError(f"the review was not applied: {result}")
        return f"mlvault review reject {key} -> REJECTED, by {result['reviewed_by']}: {result['review_reason']}"

    def _versions(self, key: str) -> list[dict[str, Any]]:
        return self.ddb.query(
            TableName=self.ledger,
            KeyConditionExpression="pk = :pk",
            ConsistentRead=True,
            ExpressionAttributeValues={":pk": {"S": f"OBJ#{self.ingest}/{key}"}},
        )["Items"]

    def _rejected(self, key: str, version: str, expected: str) -> str:
        record = self.verdict(key, version)
        if record["status"] != "REJECTED" or record.get("reason") != expected:
            raise StoryError(f"{key}: expected REJECTED {expected}, got {record['status']} {record.get('reason')}")
        return f"{key} -> REJECTED {expected}: {record['detail'][:70]}\n       quarantine: {record['quarantine_key']}"

    # --- models ---------------------------------------------------------------------------------------------

    def model_is_trained_signed_and_deployed(self) -> str:
        started = time.monotonic()
        model = self._run_pipeline()
        took = time.monotonic() - started
        r = model["record"]
        gates = ", ".join(f"{g['name']} {float(g['value']):.3f}" for g in r["gates"]["results"][1:4])
        auto = [run for run in self.registry().runs(DATASET) if "-ingest-" in run["run_id"]]
        return (
            f"{model['model_id']} from {r['manifest']['entries']} accepted files ({r['manifest']['rows']} rows; "
            f"held and rejected uploads excluded) in {took:.1f}s: {model['status']}\n"
            f"       ({len(auto)} earlier run(s) started by accepted batches, debounced; every run is recorded)\n"
            f"       gates passed: {gates}; artifact {r['artifact']['bytes']} bytes, "
            f"sha256 {r['artifact']['sha256'][:16]}..., signed with the KMS key"
        )

    def independent_verifier_accepts_the_signature(self) -> str:
        import tempfile

        from model_signing import verifying

        from mlvault.attestation.openssf import kms_public_key_pem
        from mlvault.attestation.pinned import attest_registered
        from mlvault.trust.anchors import SigningKey

        model = next(m for m in self.registry().models(DATASET) if m["status"] == "DEPLOYED")
        key = self.cloud.physical_id("-storage", "AWS::KMS::Key", "ModelSigningKey")
        kms = self.cloud.client("kms")
        key_arn = kms.describe_key(KeyId=key)["KeyMetadata"]["Arn"]
        anchor = SigningKey(key_arn, hashlib.sha256(kms_public_key_pem(kms, key_arn)).hexdigest())
        with tempfile.TemporaryDirectory() as folder:
            where = Path(folder)
            attest_registered(self.s3, kms, model, anchor, folder=where)
            verifying.Config().use_elliptic_key_verifier(public_key=where / "signing-key.pem").verify(
                where / "model", where / "model.sig"
            )
        return (
            f"{model['model_id']}: model_signing (OpenSSF, model-signing 1.1.1) verifies the package (every file "
            "of model/) with the exported public key, offline"
        )

    def second_model_goes_through_the_canary(self) -> str:
        import json

        model = self._run_pipeline()
        steps = [h.split(" ", 2)[2].split(" on ")[0] for h in model["history"] if "canary" in h or "100%" in h]
        serve = self.cloud.physical_id("-models", "AWS::Lambda::Function", SERVE_FUNCTION)
        rows = [{k: v for k, v in r.items() if k != "species"} for r in iris_batch(3, 5).to_pylist()]
        response = self.cloud.client("lambda").invoke(
            FunctionName=f"{serve}:{SERVE_ALIAS}", Payload=json.dumps({"rows": rows})
        )
        answer = json.loads(response["Payload"].read())
        if response.get("FunctionError") or answer.get("model", {}).get("id") != model["model_id"]:
            raise StoryError(f"serving did not answer with {model['model_id']}: {answer}")
        return (
            f"{model['model_id']}: {' -> '.join(steps)} (alarms checked between steps); the previous model "
            f"SUPERSEDED\n       serve:live predicts {answer['predictions']} with model {answer['model']['id']} "
            f"(digest and signature verified at load)"
        )

    def swapped_model_is_refused_at_serve(self) -> str:
        import json

        lam = self.cloud.client("lambda")
        serve = self.cloud.physical_id("-models", "AWS::Lambda::Function", SERVE_FUNCTION)
        env = lam.get_function_configuration(FunctionName=serve, Qualifier=SERVE_ALIAS)["Environment"]["Variables"]
        swapped = self.s3.put_object(
            Bucket=env[Env.MODEL_BUCKET],
            Key=env[Env.MODEL_KEY],
            Body=b'{"backdoor": true}',
            ChecksumAlgorithm="SHA256",
        )["VersionId"]
        lam.update_function_configuration(
            FunctionName=serve, Environment={"Variables": {**env, Env.MODEL_VERSION: swapped}}
        )
        version = lam.publish_version(FunctionName=serve)["Version"]
        response = lam.invoke(FunctionName=f"{serve}:{version}", Payload=json.dumps({"rows": []}))
        answer = json.loads(response["Payload"].read())
        if answer.get("error", {}).get("code") != "MODEL_DIGEST_MISMATCH":  # refused: an answer, not a crash
            raise StoryError(f"a swapped model was not refused: {answer}")
        return f"artifact swapped in S3 and pinned into version {version} -> refused: MODEL_DIGEST_MISMATCH (metric)"

    def drift_rolls_back_without_a_human(self) -> str:
        import json

        lam, cw = self.cloud.client("lambda"), self.cloud.client("cloudwatch")
        serve = self.cloud.physical_id("-models", "AWS::Lambda::Function", SERVE_FUNCTION)
        live = next(m for m in self.registry().models(DATASET) if m["status"] == "DEPLOYED")
        rows = [{k: v for k, v in r.items() if k != "species"} for r in iris_batch(200, 77, shift=2.0).to_pylist()]
        alarm = f"mlvault-{STAGE}-{MODEL}-feature-drift"

        def alarm_state() -> dict[str, Any]:
            return cw.describe_alarms(AlarmNames=[alarm])["MetricAlarms"][0]

        def drift_seen() -> str:
            points = cw.get_metric_statistics(
                Namespace=NAMESPACE,
                MetricName=Metric.MAX_FEATURE_DRIFT,
                Dimensions=[{"Name": Dimension.STAGE, "Value": STAGE}],
                StartTime=time.time() - 600,
                EndTime=time.time() + 60,
                Period=60,
                Statistics=["Maximum"],
            )["Datapoints"]
            return f"MaxFeatureDrift maximum {max((d['Maximum'] for d in points), default=float('nan')):.2f}"

        # Drifted traffic (sepal length +2 cm), one request of 200 rows (one drift window) at a time, until the
        # alarm has seen enough periods of it: bounded by work sent, not by wall time.
        sent = 0
        while alarm_state()["StateValue"] != "ALARM":
            if sent == MAX_DRIFTED_REQUESTS:
                state = alarm_state()
                raise StoryError(
                    f"sent {sent} drifted requests ({sent * len(rows)} rows); alarm {alarm} is {state['StateValue']} "
                    f"({state.get('StateReason', '')[:120]}); {drift_seen()}"
                )
            lam.invoke(FunctionName=f"{serve}:{SERVE_ALIAS}", Payload=json.dumps({"rows": rows}))
            sent += 1
            time.sleep(0.2)
        alarmed = time.monotonic()

        def rolled_back() -> tuple[dict[str, Any], dict[str, Any], str] | None:
            """The bad model ROLLED_BACK, another DEPLOYED, and the alias on the version that pins it."""
            models = {m["model_id"]: m for m in self.registry().models(DATASET)}
            now = next((m for m in models.values() if m["status"] == "DEPLOYED"), None)
            alias = lam.get_alias(FunctionName=serve, Name=SERVE_ALIAS)["FunctionVersion"]
            done = models[live["model_id"]]["status"] == "ROLLED_BACK" and now and alias == now["serving_version"]
            return (models[live["model_id"]], now, alias) if done else None

        def where_it_stands() -> str:
            statuses = ", ".join(f"{m['model_id']} {m['status']}" for m in self.registry().models(DATASET))
            alias = lam.get_alias(FunctionName=serve, Name=SERVE_ALIAS)["FunctionVersion"]
            return (
                f"models: {statuses}; alias {SERVE_ALIAS} on version {alias}; rollback function invocations: "
                f"{self._invocations('AutoRollbackFunction')}"
            )

        rolled, now, alias = wait_for(
            f"the automated rollback of {live['model_id']} after alarm {alarm}",
            rolled_back,
            timeout=60,
            describe=where_it_stands,
        )
        took = time.monotonic() - alarmed
        return (
            f"{sent} drifted requests -> {drift_seen()} (> 0.2) -> alarm {alarm} -> EventBridge -> rollback in "
            f"{took:.2f}s\n       {live['model_id']} ROLLED_BACK ({rolled['rollback_reason'][:40]}...); "
            f"serving {now['model_id']} again (version {alias}, re-verified first)"
        )

    def _invocations(self, logical_prefix: str) -> list[str]:
        function = self.cloud.physical_id("-models", "AWS::Lambda::Function", logical_prefix)
        return [
            f"{e['at'][11:19]} {'error' if e['errored'] else 'ok'}"
            for e in self.cloud.events("invoke")
            if e.get("function") == function
        ]

    def unsigned_code_is_refused(self) -> str:
        """An insider with deploy rights replaces the serving code with code nobody signed: Lambda refuses it."""
        import io
        import zipfile

        lam = self.cloud.client("lambda")
        serve = self.cloud.physical_id("-models", "AWS::Lambda::Function", SERVE_FUNCTION)
        before = lam.get_function_configuration(FunctionName=serve)["CodeSha256"]
        archive = io.BytesIO()
        with zipfile.ZipFile(archive, "w") as zf:
            zf.writestr("handler.py", "def handler(event, context):\n    return {'predictions': ['setosa']}\n")
        try:
            lam.update_function_code(FunctionName=serve, ZipFile=archive.getvalue())
        except lam.exceptions.ClientError as err:
            code = err.response["Error"]["Code"]
        else:
            raise StoryError("unsigned code was deployed to the serving function")
        after = lam.get_function_configuration(FunctionName=serve)["CodeSha256"]
        if after != before:
            raise StoryError("the serving function's code changed")
        return f"update-function-code of the serve function with an unsigned zip -> {code}; its signed code stands"

    def lake_is_locked(self) -> str:
        version = self.s3.put_object(Bucket=self.lake, Key="demo/locked.txt", Body=b"evidence")["VersionId"]
        head = self.s3.head_object(Bucket=self.lake, Key="demo/locked.txt", VersionId=version)
        try:
            self.s3.delete_object(Bucket=self.lake, Key="demo/locked.txt", VersionId=version)
        except self.s3.exceptions.ClientError as err:
            code = err.response["Error"]["Code"]
        else:
            raise StoryError("a lake object version was deleted")
        until = head["ObjectLockRetainUntilDate"].date().isoformat()
        return f"lake version under {head['ObjectLockMode']} retention until {until}; deleting it -> {code}"


def run(*, cdk_out: Path, state_dir: Path, port: int = 0) -> int:
    print("mlvault demo: the synthesized app on the local cloud (moto on 127.0.0.1, no AWS account)\n")
    started = time.monotonic()
    # Alarm periods of a minute pass in a second, so the drift alarm can ring within the story.
    cloud = control.up(cdk_out=cdk_out, state_dir=state_dir, port=port, alarm_scale=60)
    steps: list[Step] = []
    failed = None
    try:
        story = Story(cloud)
        for title, action in (
            ("local cloud provisioned from cdk.out", story.provisioned),
            ("only signed code runs: an unsigned deployment is refused", story.unsigned_code_is_refused),
            ("a signed upload lands in the Object Lock lake", story.signed_upload_lands_in_the_lake),
            ("a file tampered after signing is quarantined", story.tampered_upload_is_quarantined),
            ("an unsigned file is quarantined", story.unsigned_upload_is_quarantined),
            ("a signed file that breaks its data contract is quarantined", story.contract_breach_is_quarantined),
            ("a poisoned but validly signed batch is held", story.poisoned_batch_is_held),
            ("a reviewer rejects the held batch (who and why in the ledger)", story.reviewer_rejects_the_held_batch),
            ("a model is trained, gated, registered, signed and deployed", story.model_is_trained_signed_and_deployed),
            ("an independent verifier accepts its signature", story.independent_verifier_accepts_the_signature),
            ("the next model is promoted through the canary", story.second_model_goes_through_the_canary),
            (
                "a team's own training code runs as a SageMaker job, same chain of trust",
                story.teams_own_model_trains_on_sagemaker,
            ),
            ("predictions through the model's IAM function URL", story.predictions_through_the_function_url),
            ("the next credit model's canary splits the URL's traffic", story.credit_canary_through_the_function_url),
            ("a model swapped after signing is refused at serve", story.swapped_model_is_refused_at_serve),
            ("drift is detected and serving rolls back by itself", story.drift_rolls_back_without_a_human),
            ("the credit model's drift rolls back credit only", story.credit_drift_rolls_back_credit_only),
            ("the lake refuses deletes", story.lake_is_locked),
        ):
            step_started = time.monotonic()
            try:
                outcome = action()
            except StoryError as err:
                failed = f"{title}: {err}"
                break
            steps.append(Step(title, outcome, time.monotonic() - step_started))
            print(f"  [ok] {title}\n       {outcome}")
    finally:
        control.down(state_dir)
    total = time.monotonic() - started
    print(f"\nsummary: {len(steps)} step(s) shown, wall time {total:.1f}s (local cloud stopped)")
    if failed:
        print(f"  [FAILED] {failed}")
        return 1
    return 0
