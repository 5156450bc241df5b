"""What every command group of the CLI shares: the stage and its resources (found through the SSM parameters its
stacks publish), the stage's configured trust file, the signer options, and the one error path."""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlvault.errors import MlvaultError

DEFAULT_STAGE = "dev"
# SSM names published once per model, `<kind>/<model>` (mlvault.wiring.*_parameter); model-dataset/<model> names its
# dataset.
PER_MODEL = ("model-pipeline", "serve-function", "function-url")
MODEL_DATASET = "model-dataset/"
CDK_JSON = Path("cdk.json")  # the app's configuration, read from a checkout of it (the working directory)


# --- the stage and its resources ----------------------------------------------------------------------------


class DiscoveryError(RuntimeError):
    """The stage is not deployed where the CLI looked (or lacks a resource)."""


@dataclass(frozen=True)
class HttpAnswer:
    status: int
    headers: dict[str, str]
    body: bytes


_FUNCTION_URL_HOST = re.compile(r"^[a-z0-9]+\.lambda-url\.([a-z0-9-]+)\.on\.aws$")


def stage_names(ssm: Any, stage: str) -> dict[str, str]:
    """The names of a stage's resources, from the SSM parameters its stacks publish under its prefix."""
    from mlvault.wiring import parameter_prefix

    prefix = parameter_prefix(stage)
    names: dict[str, str] = {}
    for page in ssm.get_paginator("get_parameters_by_path").paginate(Path=prefix, Recursive=True):
        for parameter in page["Parameters"]:
            names[parameter["Name"].removeprefix(prefix)] = parameter["Value"]
    if not names:
        raise DiscoveryError(
            f"no mlvault stage {stage!r} here (no SSM parameters under {prefix}); "
            "deploy it, or point --endpoint-url / MLVAULT_ENDPOINT_URL at the local cloud"
        )
    return names


def cloud_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--stage", help="the stage (default: $MLVAULT_STAGE or dev)")
    p.add_argument("--endpoint-url", help="AWS endpoint, e.g. the local cloud's (default: $MLVAULT_ENDPOINT_URL)")
    p.add_argument("--region", help="AWS region (default: the usual AWS configuration)")


class Cloud:
    """Clients and resource names of one stage, on AWS or on the local cloud (--endpoint-url)."""

    def __init__(self, args: argparse.Namespace) -> None:
        import boto3

        self.stage = args.stage or os.environ.get("MLVAULT_STAGE", DEFAULT_STAGE)
        self._endpoint = args.endpoint_url or os.environ.get("MLVAULT_ENDPOINT_URL")
        self._session = boto3.session.Session(region_name=args.region) if args.region else boto3.session.Session()
        self._clients: dict[str, Any] = {}
        self.names = stage_names(self.client("ssm"), self.stage)
        self._model = getattr(args, "model", None)  # a verb's --model NAME, if it has one
        self._dataset = getattr(args, "dataset", None)  # or its --dataset D: the model trained on it

    def client(self, service: str):
        if service not in self._clients:
            self._clients[service] = self._session.client(service, endpoint_url=self._endpoint)
        return self._clients[service]

    def name(self, key: str) -> str:
        """A published name. Per-model resources are published as `<kind>/<model>` (model-pipeline,
        serve-function, function-url); asked for by their kind alone, the model is the verb's --model, or the one
        model trained on its --dataset."""
        if key not in self.names and key in PER_MODEL:
            key = f"{key}/{self.model()}"
        if key not in self.names:
            raise DiscoveryError(f"stage {self.stage!r} publishes no {key!r}")
        return self.names[key]

    def models(self, dataset: str | None = None) -> list[str]:
        """The stage's models (those trained on `dataset`, if given)."""
        return sorted(
            key.removeprefix(MODEL_DATASET)
            for key, value in self.names.items()
            if key.startswith(MODEL_DATASET) and (dataset is None or value == dataset)
        )

    def model(self) -> str:
        """The model a verb means: its --model, else the one model trained on its --dataset."""
        if self._model:
            return self._model
        if self._dataset:
            found = self.models(self._dataset)
            if len(found) == 1:
                return found[0]
            if found:
                raise DiscoveryError(
                    f"stage {self.stage!r} trains {len(found)} models on dataset {self._dataset!r} "
                    f"({', '.join(found)}): name one with --model"
                )
            raise DiscoveryError(f"stage {self.stage!r} trains no model on dataset {self._dataset!r}")
        raise DiscoveryError(f"name a model of stage {self.stage!r} with --model ({', '.join(self.models())})")

    def ledger(self):
        from mlvault.ledger import Ledger

        return Ledger(self.client("dynamodb"), self.name("ledger-table"))

    def registry(self):
        from mlvault.registry.records import ModelRegistry

        return ModelRegistry(self.client("dynamodb"), self.name("registry-table"))

    def signed_post(self, url: str, body: bytes, *, service: str = "lambda", timeout: float = 30.0) -> HttpAnswer:
        """POST `body` (JSON) to `url` signed with SigV4 for `service` with this session's credentials (a function
        URL with AWS_IAM auth). The region is the URL's own (`<id>.lambda-url.<region>.on.aws`), else the session's.
        With an endpoint (the local cloud) an AWS-form URL is sent to the endpoint with its own Host header (the
        local cloud serves function URLs by Host or by path); a URL on the endpoint already is sent as it is.
        Refused or failed requests are answers too (their status and body); an unreachable URL raises
        DiscoveryError."""
        import urllib.error
        import urllib.request
        from urllib.parse import urlsplit

        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest

        credentials = self._session.get_credentials()
        if credentials is None:
            raise DiscoveryError("no AWS credentials to sign the request with (configure them as for the AWS CLI)")
        parts = urlsplit(url)
        if parts.scheme not in ("https", "http") or not parts.netloc:
            raise DiscoveryError(f"not a function URL: {url!r}")
        match = _FUNCTION_URL_HOST.match(parts.hostname or "")
        region = match.group(1) if match else self._session.region_name
        if not region:
            raise DiscoveryError(f"no region to sign {url} for: give --region")
        target = url
        if self._endpoint and urlsplit(self._endpoint).netloc != parts.netloc:
            endpoint = urlsplit(self._endpoint)
            target = parts._replace(scheme=endpoint.scheme, netloc=endpoint.netloc).geturl()
        request = AWSRequest(
            method="POST", url=url, data=body, headers={"content-type": "application/json", "host": parts.netloc}
        )
        SigV4Auth(credentials.get_frozen_credentials(), service, region).add_auth(request)
        headers = dict(request.headers.items())
        sent = urllib.request.Request(target, data=body, method="POST", headers=headers)  # noqa: S310 - http(s)
        try:
            with urllib.request.urlopen(sent, timeout=timeout) as response:  # noqa: S310 - checked above
                return HttpAnswer(response.status, dict(response.headers.items()), response.read())
        except urllib.error.HTTPError as err:  # 4xx/5xx: the function's (or Lambda's) answer
            return HttpAnswer(err.code, dict(err.headers.items()), err.read())
        except (urllib.error.URLError, TimeoutError, ConnectionError) as err:
            reason = getattr(err, "reason", err)
            raise DiscoveryError(f"cannot reach {target}: {reason}") from None


def trust_file(stage: str) -> Path | None:
    """The stage's trust registry as cdk.json configures it (`context."mlvault:stages".<stage>.trustFile`, relative
    to cdk.json, as infra/settings.py reads it); None outside a checkout of the app or for a stage it lacks."""
    if not CDK_JSON.is_file():
        return None
    stages = json.loads(CDK_JSON.read_text()).get("context", {}).get("mlvault:stages", {})
    relative = stages.get(stage, {}).get("trustFile")
    return CDK_JSON.parent / relative if relative else None


# --- signing ------------------------------------------------------------------------------------------------


def signer_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--key-id", required=True, help="the registry id of the signing key")
    p.add_argument("--key", help="PEM private key file (ECDSA P-256 or Ed25519)")
    p.add_argument("--kms-key", help="KMS ECC_NIST_P256 key ARN to sign with instead of --key")


def signer(args: argparse.Namespace, cloud: Cloud | None = None):
    """The signer the options name: a local PEM key, or a KMS key (which needs the cloud)."""
    from mlvault.signing.keys import KmsSigner, LocalSigner

    if args.kms_key:
        if cloud is None:
            raise ValueError("--kms-key needs the cloud (KMS signs)")
        return KmsSigner(cloud.client("kms"), args.kms_key, args.key_id)
    if not args.key:
        raise ValueError("give --key PRIVATE_KEY.pem or --kms-key ARN")
    return LocalSigner.from_pem(Path(args.key).read_bytes(), args.key_id)


# --- the one error path -------------------------------------------------------------------------------------


def refusal_answers(p: argparse.ArgumentParser, refusal: type[MlvaultError], prefix: str = "") -> None:
    """The verb judges something (a file, a review, a model): a `refusal` it raises (an MlvaultError) is its
    answer, "PREFIX REASON: detail" on stdout with exit 1, not an error."""
    p.set_defaults(refusal=refusal, refusal_prefix=prefix)


def user_facing(err: BaseException) -> bool:
    """Expected conditions (refusals, bad input, missing setup) the user can act on; ValueError covers
    ContractError."""
    from localcloud.control import LocalCloudError
    from mlvault.errors import MlvaultError
    from mlvault.trust.producers import TrustRegistryError

    return isinstance(
        err,
        MlvaultError
        | LocalCloudError
        | DiscoveryError
        | TrustRegistryError
        | FileExistsError
        | FileNotFoundError
        | ValueError,
    )


def report(err: Exception, args: argparse.Namespace) -> int | None:
    """What main() does with an exception a verb raised: the verb's answer (a refusal it was asked to judge) on
    stdout with exit 1; an expected condition as one line on stderr with exit 2; anything else is a bug: None, and
    main() lets its traceback out."""
    refusal = getattr(args, "refusal", None)
    if refusal is not None and isinstance(err, refusal):
        print(f"{args.refusal_prefix} {err.reason}: {err.detail}".lstrip())
        return 1
    if user_facing(err):
        print(f"mlvault: {err}", file=sys.stderr)
        return 2
    return None
