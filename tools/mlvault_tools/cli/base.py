"""What every command group of the CLI shares: the stage and its resources (found through the SSM parameters its
stacks publish), the stage's configured trust file, the signer options, and the one error path."""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

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


class NotDone(RuntimeError):
    """Refused before acting: what the command was asked to do would fail, or change nothing the user meant."""


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
            from botocore.config import Config

            # A stage that cannot be reached is said within seconds, not after botocore's minute of retries.
            config = Config(connect_timeout=5, retries={"mode": "standard", "max_attempts": 3})
            self._clients[service] = self._session.client(service, endpoint_url=self._endpoint, config=config)
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
        """The model a verb means: its --model (one the stage trains), else the one model trained on its --dataset."""
        if self._model:
            if self._model not in self.models():
                raise DiscoveryError(
                    f"stage {self.stage} trains no model {self._model!r} (its models: {', '.join(self.models())})"
                )
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
            if isinstance(reason, OSError) and reason.strerror:
                reason = reason.strerror.lower()
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
    p.add_argument("--key", type=input_file("a PEM private key"), help="PEM private key file (ECDSA P-256 or Ed25519)")
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
    try:
        return LocalSigner.from_pem(args.key.read_bytes(), args.key_id)
    except (ValueError, TypeError):  # not PEM, another kind of key, or encrypted (TypeError: no password given)
        raise ValueError(
            f"{args.key}: not an unencrypted PEM private key (expected ECDSA P-256 or Ed25519, as keygen writes)"
        ) from None


# --- exit codes ---------------------------------------------------------------------------------------------

OK = 0  # done; and where the command judges something, the verdict is yes
ERROR = 1  # nothing was done: the stage cannot be reached, what was named does not exist, or refused before acting
USAGE = 2  # the command line is wrong: an unknown option, a missing or unreadable input, a malformed value
NO = 3  # a verdict, and it is no: rejected, refused, revoked, rolled back, failed
HELD = 4  # a verdict waiting for a human: held for review
PENDING = 5  # no verdict yet: still running, or awaiting its verdict when --wait ran out

EXIT_CODES = {
    OK: "done (a verdict: yes — ACCEPTED, PASS, VERIFIED, served, SUCCEEDED)",
    ERROR: "nothing was done: the stage cannot be reached, what was named does not exist, or refused before acting",
    USAGE: "the command line is wrong: an unknown option, a missing or unreadable file, a malformed value",
    NO: "a verdict, and it is no: REJECTED, REFUSED, REVOKED, ROLLED_BACK, a failed run, a client error",
    HELD: "HELD: waiting for a human (mlvault review approve|reject)",
    PENDING: "no verdict yet: still running, or still awaiting its verdict when --wait ran out",
}


class Parser(argparse.ArgumentParser):
    """argparse with its errors on one line (the usage is what --help prints), exit USAGE."""

    def error(self, message: str) -> NoReturn:
        self.exit(USAGE, f"{self.prog}: {message} (see `{self.prog} --help`)\n")


# --- arguments: checked when they are parsed, before the verb does anything -----------------------------------


def input_file(expected: str) -> Callable[[str], Path]:
    """A file the verb reads: it exists, is a file and is readable; else a usage error naming what is expected."""

    def parse(value: str) -> Path:
        path = Path(value)
        if not path.exists():
            raise argparse.ArgumentTypeError(f"no such file {value!r} (expected {expected})")
        if path.is_dir():
            raise argparse.ArgumentTypeError(f"{value!r} is a directory (expected {expected})")
        if not os.access(path, os.R_OK):
            raise argparse.ArgumentTypeError(f"{value!r} is not readable (expected {expected})")
        return path

    return parse


def input_directory(expected: str) -> Callable[[str], Path]:
    def parse(value: str) -> Path:
        path = Path(value)
        if not path.is_dir():
            state = "is a file" if path.exists() else "does not exist"
            raise argparse.ArgumentTypeError(f"{value!r} {state} (expected {expected})")
        return path

    return parse


def output_file(expected: str) -> Callable[[str], Path]:
    """A file the verb writes: its directory exists and it is not a directory."""

    def parse(value: str) -> Path:
        path = Path(value)
        if path.is_dir():
            raise argparse.ArgumentTypeError(f"{value!r} is a directory (expected {expected})")
        if not path.parent.is_dir():
            raise argparse.ArgumentTypeError(f"no directory {str(path.parent)!r} to write {value!r} in")
        return path

    return parse


def output_directory(value: str) -> Path:
    path = Path(value)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{value!r} is a file (expected a directory)")
    return path


def json_file(expected: str) -> Callable[[str], Any]:
    """A JSON file, parsed: the document (a usage error names the file, the line and column, and what is expected)."""
    readable = input_file(expected)

    def parse(value: str) -> Any:
        path = readable(value)
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except UnicodeDecodeError:
            raise argparse.ArgumentTypeError(f"{value!r} is not UTF-8 text (expected {expected})") from None
        except json.JSONDecodeError as err:
            raise argparse.ArgumentTypeError(
                f"{value!r} is not JSON (line {err.lineno} column {err.colno}: {err.msg}; expected {expected})"
            ) from None

    return parse


def reason_text(value: str) -> str:
    """Why a human decided (recorded with who): not empty."""
    if not value.strip():
        raise argparse.ArgumentTypeError("give a reason: it is recorded with who decided")
    return value.strip()


def iso_time(value: str) -> datetime:
    """An ISO 8601 time with its zone."""
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{value!r} is not an ISO 8601 time with a zone (e.g. 2026-11-25T10:00:00Z)")
    return parsed


def number(kind: type = float, *, minimum: float | None = None, above: float | None = None, maximum=None):
    """A number of `kind` within bounds (minimum and maximum inclusive, `above` exclusive)."""

    def parse(value: str):
        try:
            parsed = kind(value)
        except ValueError:
            parsed = None
        if parsed is None or parsed != parsed:  # NaN is no number of seconds or rows
            what = "an integer" if kind is int else "a number"
            raise argparse.ArgumentTypeError(f"{value!r} is not {what}")
        if above is not None and not parsed > above:
            raise argparse.ArgumentTypeError(f"must be more than {above}, got {value}")
        if minimum is not None and parsed < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        if maximum is not None and parsed > maximum:
            raise argparse.ArgumentTypeError(f"must be at most {maximum}, got {value}")
        return parsed

    return parse


# --- output -------------------------------------------------------------------------------------------------


def json_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="one JSON document on stdout (same exit code)")


def print_json(document: Any) -> None:
    print(json.dumps(document, indent=2, default=str))


def fixed(value: Any, places: int = 3) -> str:
    """A measurement as every listing prints it: floats to `places` decimals, anything else as it is."""
    if isinstance(value, float):
        return f"{value:.{places}f}"
    if value is None:
        return "-"
    return str(value)


def table(rows: Sequence[Sequence[Any]], header: Sequence[str]) -> str:
    """Rows as aligned columns under a header (the last column is not padded)."""
    cells = [list(map(str, header)), *([fixed(c) for c in row] for row in rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(widths[i]) if i < len(header) - 1 else cell for i, cell in enumerate(row)).rstrip()
        for row in cells
    )


def on_terminal(stream=sys.stderr) -> bool:
    return bool(getattr(stream, "isatty", lambda: False)())


# --- the one error path -------------------------------------------------------------------------------------


def refusal_answers(p: argparse.ArgumentParser, refusal: type[MlvaultError], prefix: str = "REFUSED") -> None:
    """The verb judges something (a file, a review, a model): a `refusal` it raises (an MlvaultError) is its
    answer, "PREFIX REASON: detail" on stdout (or its JSON with --json) with exit NO, not an error."""
    p.set_defaults(refusal=refusal, refusal_prefix=prefix)


def user_facing(err: BaseException) -> bool:
    """Expected conditions (refusals, bad input, missing setup) the user can act on; ValueError covers
    ContractError."""
    from localcloud.control import LocalCloudError
    from mlvault.errors import MlvaultError
    from mlvault.trust.producers import TrustRegistryError

    return isinstance(
        err,
        MlvaultError | LocalCloudError | DiscoveryError | NotDone | TrustRegistryError | OSError | ValueError,
    )


_CREDENTIAL_CODES = {
    "ExpiredToken",
    "ExpiredTokenException",
    "InvalidClientTokenId",
    "UnrecognizedClientException",
    "SignatureDoesNotMatch",
    "InvalidAccessKeyId",
    "InvalidSignatureException",
}


def _local_hint() -> str:
    """How to start the local cloud and point this shell at it (with its --state-dir, when `local env` said one)."""
    state_dir = os.environ.get("MLVAULT_LOCAL_STATE_DIR")
    option = f" --state-dir {state_dir}" if state_dir else ""
    return f'`mlvault local up{option}`, then `eval "$(mlvault local env{option})"`'


def cloud_error(err: BaseException, args: argparse.Namespace) -> str | None:
    """One line for an error botocore raised: which stage could not be reached, why, and what to do."""
    from botocore import exceptions as bx

    if not isinstance(err, bx.BotoCoreError | bx.ClientError):
        return None
    stage = getattr(args, "stage", None) or os.environ.get("MLVAULT_STAGE", DEFAULT_STAGE)
    endpoint, source = getattr(args, "endpoint_url", None), "--endpoint-url"
    for variable in ("MLVAULT_ENDPOINT_URL", "AWS_ENDPOINT_URL"):
        if not endpoint and os.environ.get(variable):
            endpoint, source = os.environ[variable], variable
    local = f"for the local cloud: {_local_hint()}"
    if isinstance(err, bx.NoRegionError):
        return f"stage {stage}: no AWS region: give --region or set AWS_DEFAULT_REGION ({local})"
    if isinstance(err, bx.NoCredentialsError | bx.PartialCredentialsError | bx.CredentialRetrievalError):
        return f"stage {stage}: no AWS credentials: configure them as for the AWS CLI ({local})"
    if isinstance(err, bx.ConnectionError | bx.HTTPClientError):
        if endpoint:
            return (
                f"stage {stage}: cannot reach {endpoint} ({source}): is the local cloud running? start it with "
                f"{_local_hint()}; or unset MLVAULT_ENDPOINT_URL and AWS_ENDPOINT_URL to use AWS"
            )
        return f"stage {stage}: cannot reach AWS ({err}): check the network, --region and the credentials"
    if isinstance(err, bx.ClientError):
        error = err.response.get("Error", {})
        code, message = error.get("Code", "?"), " ".join(str(error.get("Message", "")).split())
        if code in _CREDENTIAL_CODES:
            return f"stage {stage}: AWS refused the credentials ({code}: {message}): refresh them ({local})"
        return f"stage {stage}: {err.operation_name} refused: {code}: {message}"
    return f"stage {stage}: {' '.join(str(err).split())}"


def _one_line(err: BaseException) -> str:
    if isinstance(err, OSError) and err.filename is not None:
        return f"cannot use {err.filename}: {(err.strerror or str(err)).lower()}"
    return " | ".join(line.strip() for line in str(err).strip().splitlines() if line.strip())


def report(err: Exception, args: argparse.Namespace) -> int | None:
    """What main() does with an exception a verb raised: the verb's answer (a refusal it was asked to judge) on
    stdout with exit NO; a stage it cannot reach, or an expected condition, as one line on stderr with exit
    ERROR; anything else is a bug: None, and main() lets its traceback out."""
    refusal = getattr(args, "refusal", None)
    if refusal is not None and isinstance(err, refusal):
        if getattr(args, "json", False):
            print_json({"verdict": args.refusal_prefix, "reason": str(err.reason), "detail": err.detail})
        else:
            print(f"{args.refusal_prefix} {err.reason}: {err.detail}")
        return NO
    message = cloud_error(err, args)
    if message is None and user_facing(err):
        message = _one_line(err)
    if message is None:
        return None
    print(f"mlvault: {message}", file=sys.stderr)
    return ERROR
