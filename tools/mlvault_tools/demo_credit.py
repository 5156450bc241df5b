"""The demo's chapter on a team's own model (`mlvault demo`, mlvault_tools.demo): the credit model's training code
as a SageMaker job (emulated), predictions through its IAM function URL, its canary splitting the URL's traffic,
and its own drift rolling back credit only.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlvault.wiring import SERVE_ALIAS
from mlvault_tools.demo_story import (
    MAX_DRIFTED_REQUESTS,
    SERVE_FUNCTION,
    STAGE,
    StoryBase,
    StoryError,
    wait_for,
)
from mlvault_tools.samples import credit_batch, credit_csv

CREDIT = "credit"  # a team's own model (models/credit/train.py) on the emulated SageMaker (cdk.json `models`)
CREDIT_ROWS = 15_000  # per accepted file (two files): enough for the gates' held-out split


class CreditChapter(StoryBase):
    def teams_own_model_trains_on_sagemaker(self) -> str:
        """The credit model: the team's own training code (models/credit/train.py, scikit-learn, ONNX out) run as
        a SageMaker training job (emulated), then the same gates, signature and canary as the built-in model."""
        import io
        import tempfile

        from model_signing import verifying

        from mlvault.attestation.openssf import kms_public_key_pem
        from mlvault.model_package import file_digests, unpack

        for index in range(2):
            key, version, _ = self.push(
                f"applications-{index:04d}.csv", credit_csv(CREDIT_ROWS, 500 + index), dataset=CREDIT
            )
            if (record := self.verdict(key, version))["status"] != "ACCEPTED":
                raise StoryError(f"{key}: {record['status']} {record.get('reason')}")
        started = time.monotonic()
        model = self._run_pipeline(CREDIT, CREDIT, timeout=600)
        took = time.monotonic() - started
        if model["status"] != "DEPLOYED":
            raise StoryError(f"{model['model_id']} is {model['status']}, not DEPLOYED")
        r = model["record"]
        run = self.registry().run(model["run_id"])
        artifact = r["artifact"]
        with tempfile.TemporaryDirectory() as folder:
            where = Path(folder)
            (where / "model").mkdir()
            package = self.s3.get_object(
                Bucket=artifact["bucket"], Key=artifact["key"], VersionId=artifact["version_id"]
            )
            if file_digests(unpack(io.BytesIO(package["Body"].read()), where / "model")) != artifact["files"]:
                raise StoryError("the package's files are not the ones its record names")
            signature = self.s3.get_object(
                Bucket=artifact["bucket"], Key=model["signature_key"], VersionId=model["signature_version"]
            )
            (where / "model.sig").write_bytes(signature["Body"].read())
            (where / "key.pem").write_bytes(kms_public_key_pem(self.cloud.client("kms"), model["signing_key_arn"]))
            verifying.Config().use_elliptic_key_verifier(public_key=where / "key.pem").verify(
                where / "model", where / "model.sig"
            )
        gates = {g["name"]: float(g["value"]) for g in r["gates"]["results"]}
        shown = ", ".join(f"{n} {v:.3f}" for n, v in gates.items() if n in ("min_accuracy", "max_parity_difference"))
        return (
            f"{model['model_id']} in {took:.1f}s: training job {r['training_job']['name']} ran models/credit/train.py "
            f"(code sha256 {r['code']['sha256'][:16]}...)\n"
            f"       it claims validation accuracy {run['claims']['validation_accuracy']:.3f}; mlvault measured on "
            f"the rows it kept: {shown or 'gates passed'}\n"
            f"       package {', '.join(sorted(artifact['files']))} signed as a directory; model_signing verifies "
            f"it offline; {model['status']} after the canary"
        )

    def predictions_through_the_function_url(self) -> str:
        """`mlvault predict --model credit`, as a user runs it: SigV4-signed to the model's function URL (AWS_IAM)."""
        import json
        import os
        import subprocess
        import sys
        import tempfile

        rows = [{k: v for k, v in r.items() if k != "decision"} for r in credit_batch(4, 900).to_pylist()]
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as file:
            json.dump(rows, file)
        try:
            done = subprocess.run(
                [sys.executable, "-m", "mlvault_tools.cli", "predict", "--model", CREDIT, file.name],
                capture_output=True,
                text=True,
                timeout=120,
                env={**os.environ, **self.cloud.environment()},
            )
        finally:
            os.unlink(file.name)
        if done.returncode != 0:
            raise StoryError(f"mlvault predict exited {done.returncode}: {done.stdout} {done.stderr}")
        predictions = done.stdout.split()
        if len(predictions) != len(rows):
            raise StoryError(f"{len(rows)} rows, {len(predictions)} predictions: {done.stdout}")
        return (
            f"mlvault predict --model {CREDIT} (4 applications) -> function URL, SigV4 for lambda, IAM-authorized "
            f"-> {' '.join(predictions)}\n       served by {done.stderr.strip()[:110]}"
        )

    def _credit_url(self) -> Callable[[list[dict[str, Any]]], dict[str, Any]]:
        """POST rows to the credit model's function URL, SigV4-signed as `mlvault predict` signs them."""
        import argparse
        import json
        import os

        from mlvault.wiring import function_url_parameter
        from mlvault_tools.cli.base import Cloud

        os.environ.update(self.cloud.environment())  # the CLI's endpoint and the developer's credentials
        cli = Cloud(argparse.Namespace(stage=STAGE, endpoint_url=self.cloud.endpoint, region=None, model=CREDIT))
        url = cli.name(function_url_parameter(CREDIT))

        def post(rows: list[dict[str, Any]]) -> dict[str, Any]:
            answer = cli.signed_post(url, json.dumps({"rows": rows}).encode())
            if answer.status != 200:
                raise StoryError(f"{url}: HTTP {answer.status} {answer.body[:200]!r}")
            return json.loads(answer.body)

        return post

    def credit_canary_through_the_function_url(self) -> str:
        """The next credit model goes through the canary while callers use the URL: the alias's weights split the
        URL's traffic between the two versions, each answer naming the model that made it."""
        import threading

        post = self._credit_url()
        # fresh applications in every request, drawn as the training data was: traffic that does not drift
        batches = [
            [
                {k: v for k, v in r.items() if k != "decision"}
                for r in credit_batch(20, 901, first_id=1 + 20 * i).to_pylist()
            ]
            for i in range(200)
        ]
        before = next(m for m in self.registry().models(CREDIT) if m["status"] == "DEPLOYED")["model_id"]
        result: dict[str, Any] = {}

        def train() -> None:
            try:
                result["model"] = self._run_pipeline(CREDIT, CREDIT, timeout=600)
            except StoryError as err:
                result["error"] = err

        run = threading.Thread(target=train)
        run.start()
        seen: dict[str, int] = {}
        while run.is_alive():
            model = post(batches[sum(seen.values()) % len(batches)])["model"]["id"]
            seen[model] = seen.get(model, 0) + 1
        run.join()
        if "model" not in result:
            raise StoryError(f"{result.get('error', 'the credit pipeline did not finish')}; answers seen: {seen}")
        after = result["model"]
        if after["status"] != "DEPLOYED" or after["model_id"] == before:
            raise StoryError(f"{after['model_id']} is {after['status']}")
        steps = [h.split(" ", 2)[2].split(" on ")[0] for h in after["history"] if "canary" in h or "100%" in h]
        answered = ", ".join(f"{model} {count}" for model, count in sorted(seen.items()))
        return (
            f"{after['model_id']}: {' -> '.join(steps)}; {before} SUPERSEDED\n"
            f"       {sum(seen.values())} URL requests during the run were answered by: {answered}"
        )

    def credit_drift_rolls_back_credit_only(self) -> str:
        """Drifted applications through the credit URL ring the credit model's own drift alarm: credit rolls back to
        its previous model; the iris model's serving does not move."""
        lam, cw = self.cloud.client("lambda"), self.cloud.client("cloudwatch")
        post = self._credit_url()
        credit_fn = self.cloud.physical_id("-models", "AWS::Lambda::Function", "CreditServeFunction")
        iris_fn = self.cloud.physical_id("-models", "AWS::Lambda::Function", SERVE_FUNCTION)
        iris_before = lam.get_alias(FunctionName=iris_fn, Name=SERVE_ALIAS)
        live = next(m for m in self.registry().models(CREDIT) if m["status"] == "DEPLOYED")
        drifted = [
            {**{k: v for k, v in r.items() if k != "decision"}, "income": r["income"] * 20, "age": 85}
            for r in credit_batch(200, 902).to_pylist()
        ]
        alarm = f"mlvault-{STAGE}-{CREDIT}-feature-drift"
        sent = 0
        while cw.describe_alarms(AlarmNames=[alarm])["MetricAlarms"][0]["StateValue"] != "ALARM":
            if sent == MAX_DRIFTED_REQUESTS:
                raise StoryError(f"sent {sent} drifted requests; alarm {alarm} is not in ALARM")
            post(drifted)
            sent += 1
            time.sleep(0.2)
        alarmed = time.monotonic()

        def rolled_back() -> dict[str, Any] | None:
            models = {m["model_id"]: m for m in self.registry().models(CREDIT)}
            now = next((m for m in models.values() if m["status"] == "DEPLOYED"), None)
            alias = lam.get_alias(FunctionName=credit_fn, Name=SERVE_ALIAS)["FunctionVersion"]
            done = models[live["model_id"]]["status"] == "ROLLED_BACK" and now and alias == now["serving_version"]
            return now if done else None

        now = wait_for(f"the rollback of {live['model_id']} after alarm {alarm}", rolled_back, timeout=60)
        took = time.monotonic() - alarmed
        iris_after = lam.get_alias(FunctionName=iris_fn, Name=SERVE_ALIAS)
        if (iris_after["FunctionVersion"], iris_after.get("RoutingConfig")) != (
            iris_before["FunctionVersion"],
            iris_before.get("RoutingConfig"),
        ):
            raise StoryError("the iris model's serving moved on a credit alarm")
        return (
            f"{sent} drifted URL requests (income x20, age 85) -> alarm {alarm} -> rollback in {took:.2f}s\n"
            f"       {live['model_id']} ROLLED_BACK, serving {now['model_id']} again; iris stays on version "
            f"{iris_after['FunctionVersion']}"
        )
