"""Lambda functions with mlvault's required properties, built one way for every function:

code and layers signed by the stage's signer and a code signing config (AWS Signer profile, the stage's policy:
Enforce by default), a dead-letter queue, JSON structured logging into an encrypted log group with retention,
environment variables encrypted with the stage's data key, a role of its own with no managed policies, and the
shared layers. pyarrow and onnxruntime (with numpy, the only numpy of any function) come in layers of their own,
only for the functions that ask for them (GUIDE.md section 2: mind the 250 MB unzipped limit). Functions that
decide whom to trust get the stage's trust anchors, and the facts of the models they act on, bundled into their
signed code (infra/constructs/trust_anchors.py, infra/constructs/model_facts.py).
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jsii
from aws_cdk import AssetHashType, BundlingOptions, DockerImage, Duration, ILocalBundling, RemovalPolicy, Size, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.constructs.signed_code import SignedCode, SigningProvider
from infra.constructs.storage import bucket_arn_ack, bucket_name
from infra.constructs.trust_anchors import TrustAnchors
from infra.policy.nag import acknowledge
from infra.settings import CONTRACTS_DIR, ROOT, StageSettings
from mlvault.wiring import NAMESPACE, Bundle, Env

LAMBDAS_DIR = ROOT / "lambdas"
LIBRARY_LAYER_DIR = ROOT / "layers" / "mlvault"
DEPS_LAYER_DIR = ROOT / "build" / "layers" / "deps"
ARROW_LAYER_DIR = ROOT / "build" / "layers" / "arrow"
ONNX_LAYER_DIR = ROOT / "build" / "layers" / "onnx"
ONNX_GRAPH_LAYER_DIR = ROOT / "build" / "layers" / "onnxgraph"
MAX_LAYERS = 5  # Lambda's limit per function
RUNTIME = lambda_.Runtime.PYTHON_3_14
ASSET_EXCLUDES = ["**/__pycache__", "**/*.pyc", "**/*.egg-info"]
# Layers pip builds under build/layers/<name>: without the Makefile's stamp file.
THIRD_PARTY_EXCLUDES = [*ASSET_EXCLUDES, ".installed"]
# Lambda gives a function one full vCPU at 1,769 MB of memory.
ONE_VCPU_MB = 1769
EPHEMERAL_STORAGE_MIN_MIB = 512
EPHEMERAL_STORAGE_MAX_MIB = 10240


@jsii.implements(ILocalBundling)
class _CopyTree:
    """Local bundling without Docker: the handler directory plus extra files (e.g. the trust registry)."""

    def __init__(self, source: Path, extra_files: dict[str, Path]) -> None:
        self._source = source
        self._extra = extra_files

    def try_bundle(self, output_dir: str, _options: object) -> bool:
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
        shutil.copytree(self._source, output_dir, dirs_exist_ok=True, ignore=ignore)
        for relative, path in self._extra.items():
            target = Path(output_dir) / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
        return True


def _bundle_hash(source: Path, extra_files: dict[str, Path]) -> str:
    """SHA-256 over the bundle's content: every handler file and every extra file, with their bundle paths."""
    digest = hashlib.sha256()
    files = {str(p.relative_to(source)): p for p in source.rglob("*") if p.is_file() and "__pycache__" not in p.parts}
    files |= extra_files
    for relative in sorted(files):
        digest.update(f"{relative}\0{hashlib.sha256(files[relative].read_bytes()).hexdigest()}\n".encode())
    return digest.hexdigest()


def function_asset(source: Path, extra_files: dict[str, Path] | None = None) -> dict[str, Any]:
    """The options of a function's code asset (aws_s3_assets.Asset): its handler directory, plus extra files
    bundled locally when given."""
    if not extra_files:
        return {"path": str(source), "exclude": ASSET_EXCLUDES}
    missing = [str(p) for p in extra_files.values() if not p.is_file()]
    if missing:
        raise AssetMissingError(f"files to bundle with {source.name} are missing: {missing}")
    return {
        "path": str(source),
        # Hash what is bundled, not only the handler directory: a changed registry or contract must change the
        # asset (with the source hash, cdk reused a stale bundle of the same hash: the old policy files).
        "asset_hash_type": AssetHashType.CUSTOM,
        "asset_hash": _bundle_hash(source, extra_files),
        "bundling": BundlingOptions(
            image=DockerImage.from_registry("mlvault/no-docker"), local=_CopyTree(source, extra_files)
        ),
    }


def contract_files() -> dict[str, Path]:
    """Every data contract (with its pinned baseline), at its path in a function's bundle."""
    return {f"{Bundle.CONTRACTS_DIR}/{p.relative_to(CONTRACTS_DIR)}": p for p in CONTRACTS_DIR.rglob("*.json")}


class AssetMissingError(RuntimeError):
    """A Lambda asset that `make setup` builds is missing."""


def spool_storage_mib(max_file_bytes: int) -> int:
    """Ephemeral storage for a function that spools files of up to max_file_bytes to disk (Parquet is read from
    a local file): the file rounded up to MiB plus Lambda's default 512 MiB, at most Lambda's 10,240 MiB."""
    file_mib = -(-max_file_bytes // (1024 * 1024))
    return min(file_mib + EPHEMERAL_STORAGE_MIN_MIB, EPHEMERAL_STORAGE_MAX_MIB)


def log_retention(days: int) -> logs.RetentionDays:
    allowed = {
        1: logs.RetentionDays.ONE_DAY,
        3: logs.RetentionDays.THREE_DAYS,
        5: logs.RetentionDays.FIVE_DAYS,
        7: logs.RetentionDays.ONE_WEEK,
        14: logs.RetentionDays.TWO_WEEKS,
        30: logs.RetentionDays.ONE_MONTH,
        60: logs.RetentionDays.TWO_MONTHS,
        90: logs.RetentionDays.THREE_MONTHS,
        180: logs.RetentionDays.SIX_MONTHS,
        365: logs.RetentionDays.ONE_YEAR,
        731: logs.RetentionDays.TWO_YEARS,
        1827: logs.RetentionDays.FIVE_YEARS,
        3653: logs.RetentionDays.TEN_YEARS,
    }
    if days not in allowed:
        raise ValueError(f"log retention of {days} days is not one CloudWatch Logs offers: {sorted(allowed)}")
    return allowed[days]


def stage_log_group(
    scope: Construct, construct_id: str, *, settings: StageSettings, data_key: kms.IKey, name: str
) -> logs.LogGroup:
    """A log group of the stage (`<log group prefix><name>`): encrypted with the data key, the stage's retention,
    retained when its stack is deleted."""
    return logs.LogGroup(
        scope,
        construct_id,
        log_group_name=f"{settings.log_group_prefix}{name}",
        retention=log_retention(settings.log_retention_days),
        encryption_key=data_key,
        removal_policy=RemovalPolicy.RETAIN,
    )


def function_role(scope: Construct, *, settings: StageSettings, name: str, log_group: logs.ILogGroup) -> iam.Role:
    """A function's own role: assumed by Lambda, no managed policies, allowed to write its own log group."""
    role = iam.Role(
        scope,
        "Role",
        assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
        description=f"mlvault {settings.stage} {name} function",
    )
    role.add_to_policy(
        iam.PolicyStatement(
            actions=["logs:CreateLogStream", "logs:PutLogEvents"],
            resources=[log_group.log_group_arn],
        )
    )
    acknowledge(
        role,
        "NIST.800.53.R5-IAMNoInlinePolicy",
        f"The policy is attached to the {name} function's own role only and lists exact actions and "
        "resources; a customer-managed policy would grant the same.",
    )
    return role


def function_dlq(scope: Construct, *, data_key: kms.IKey, name: str) -> sqs.Queue:
    dlq = sqs.Queue(
        scope,
        "Dlq",
        encryption=sqs.QueueEncryption.KMS,
        encryption_master_key=data_key,
        enforce_ssl=True,
        retention_period=Duration.days(14),
    )
    acknowledge(dlq, "AwsSolutions-SQS3", f"This queue is the dead-letter queue of the {name} function.")
    return dlq


def acknowledge_function(function: lambda_.Function, settings: StageSettings) -> None:
    """The NIST findings every mlvault function shares, with their reasons."""
    acknowledge(
        function,
        "NIST.800.53.R5-LambdaInsideVPC",
        "The function only calls AWS APIs (S3, SQS, DynamoDB, KMS) over TLS with IAM auth; a VPC would "
        "add NAT or endpoints without reducing what the role may reach.",
    )
    if settings.reserved_concurrency is None:
        acknowledge(
            function,
            "NIST.800.53.R5-LambdaConcurrency",
            f"Stage {settings.stage} sets no reservedConcurrency: new accounts have too little "
            "unreserved concurrency for a reservation to deploy. Set it in cdk.json for larger accounts.",
        )


class FunctionPlatform(Construct):
    """What every function of a stateless stack shares: the code signing config (the stage's signing profile and
    policy), the signer that signs their code, the layers (signed too) and settings."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: StageSettings,
        data_key: kms.IKey,
        signing: SigningProvider,
    ) -> None:
        super().__init__(scope, construct_id)
        self.settings = settings
        self.data_key = data_key
        self.signing = signing
        self.code_signing = signing.code_signing_config(
            self,
            "CodeSigning",
            policy=settings.code_signing_policy,
            description=f"mlvault {settings.stage}: {settings.code_signing_policy} on code its signer did not sign",
        )
        if not (DEPS_LAYER_DIR / "python").is_dir():
            raise AssetMissingError(
                f"the Lambda dependency layer is not built ({DEPS_LAYER_DIR}/python is missing): run `make setup`"
            )
        self.deps_layer = self._layer(
            "DepsLayer",
            DEPS_LAYER_DIR,
            THIRD_PARTY_EXCLUDES,
            "mlvault third-party dependencies (layers/deps/requirements.txt)",
        )
        self.library_layer = self._layer(
            "LibraryLayer", LIBRARY_LAYER_DIR, ASSET_EXCLUDES, "mlvault shared library (layers/mlvault)"
        )
        self._arrow_layer: lambda_.LayerVersion | None = None
        self._onnx_layer: lambda_.LayerVersion | None = None
        self._onnx_graph_layer: lambda_.LayerVersion | None = None

    def _layer(self, construct_id: str, path: Path, exclude: list[str], description: str) -> lambda_.LayerVersion:
        """A layer deployed from its signed asset."""
        signed = SignedCode(
            self, f"{construct_id}Code", provider=self.signing, asset={"path": str(path), "exclude": exclude}
        )
        return lambda_.LayerVersion(
            self, construct_id, code=signed.code, compatible_runtimes=[RUNTIME], description=description
        )

    def log_group(self, scope: Construct, construct_id: str, *, name: str) -> logs.LogGroup:
        """A log group of the stage (stage_log_group)."""
        return stage_log_group(scope, construct_id, settings=self.settings, data_key=self.data_key, name=name)

    @property
    def arrow_layer(self) -> lambda_.LayerVersion:
        """The trimmed pyarrow layer (layers/arrow, built by `make setup`); created for the first function that
        asks for it, so a stack without one synthesizes no ~100 MB asset."""
        if self._arrow_layer is None:
            if not (ARROW_LAYER_DIR / "python" / "pyarrow").is_dir():
                raise AssetMissingError(
                    f"the pyarrow layer is not built ({ARROW_LAYER_DIR}/python/pyarrow is missing): run `make setup`"
                )
            self._arrow_layer = self._layer(
                "ArrowLayer",
                ARROW_LAYER_DIR,
                THIRD_PARTY_EXCLUDES,
                "pyarrow, trimmed to CSV, JSON, Parquet and compute (layers/arrow/requirements.txt)",
            )
        return self._arrow_layer

    @property
    def onnx_layer(self) -> lambda_.LayerVersion:
        """The trimmed onnxruntime layer with numpy (layers/onnx, built by `make setup`); created for the first
        function that asks for it."""
        if self._onnx_layer is None:
            if not (ONNX_LAYER_DIR / "python" / "onnxruntime").is_dir():
                raise AssetMissingError(
                    f"the onnxruntime layer is not built ({ONNX_LAYER_DIR}/python/onnxruntime is missing): "
                    "run `make setup`"
                )
            self._onnx_layer = self._layer(
                "OnnxLayer",
                ONNX_LAYER_DIR,
                THIRD_PARTY_EXCLUDES,
                "onnxruntime and numpy, trimmed to CPU inference (layers/onnx/requirements.txt)",
            )
        return self._onnx_layer

    @property
    def onnx_graph_layer(self) -> lambda_.LayerVersion:
        """The onnx layer (layers/onnxgraph, built by `make setup`): for the function that writes ONNX graphs (the
        built-in trainer), beside the onnxruntime layer whose numpy it uses; created for the first function that
        asks for it."""
        if self._onnx_graph_layer is None:
            if not (ONNX_GRAPH_LAYER_DIR / "python" / "onnx").is_dir():
                raise AssetMissingError(
                    f"the onnx layer is not built ({ONNX_GRAPH_LAYER_DIR}/python/onnx is missing): run `make setup`"
                )
            self._onnx_graph_layer = self._layer(
                "OnnxGraphLayer",
                ONNX_GRAPH_LAYER_DIR,
                THIRD_PARTY_EXCLUDES,
                "onnx and protobuf, to write ONNX graphs (layers/onnxgraph/requirements.txt)",
            )
        return self._onnx_graph_layer


class SecureFunction(Construct):
    """One Lambda function from lambdas/<name>/handler.py, built to mlvault's rules."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        platform: FunctionPlatform,
        name: str,
        description: str,
        environment: dict[str, str],
        timeout: Duration | None = None,
        memory_size: int = 512,
        ephemeral_storage_mib: int | None = None,
        with_arrow: bool = False,
        with_onnx: bool = False,
        with_onnx_graph: bool = False,
        extra_files: dict[str, Path] | None = None,
        anchors: TrustAnchors | None = None,
        bundle: Mapping[str, Mapping[str, Any]] | None = None,
        instance: str | None = None,
    ) -> None:
        """`bundle`: documents the signer writes into the zip beside the anchors (path -> JSON, values may be
        tokens). `instance`: for a handler deployed once per model, the model's name: the function's log group is
        `<log group prefix><name>/<instance>` and its service name `mlvault-<name>-<instance>`."""
        super().__init__(scope, construct_id)
        settings = platform.settings
        source = LAMBDAS_DIR / name
        if not (source / "handler.py").is_file():
            raise AssetMissingError(f"no handler at {source / 'handler.py'}")
        label = f"{name}/{instance}" if instance else name
        self.platform = platform
        self.log_group = platform.log_group(self, "Logs", name=label)
        self.role = function_role(self, settings=settings, name=label, log_group=self.log_group)
        self.dlq = function_dlq(self, data_key=platform.data_key, name=label)
        layers = [
            platform.deps_layer,
            *([platform.arrow_layer] if with_arrow else []),
            *([platform.onnx_layer] if with_onnx or with_onnx_graph else []),
            *([platform.onnx_graph_layer] if with_onnx_graph else []),
            platform.library_layer,
        ]
        if len(layers) > MAX_LAYERS:
            raise ValueError(f"{label}: {len(layers)} layers, Lambda allows {MAX_LAYERS} per function")
        documents = {**(anchors.bundle if anchors else {}), **(bundle or {})}
        # The code as deployed: the handler directory (and its bundled policy files) plus, for a function that
        # decides whom to trust, the stage's trust anchors and its models' facts, all signed by the stage's signer.
        self.code = SignedCode(
            self,
            "Code",
            provider=platform.signing,
            asset=function_asset(source, extra_files),
            bundle=documents or None,
            pin_keys=anchors.pin_keys if anchors else None,
        )
        self.function = lambda_.Function(
            self,
            "Function",
            description=description,
            runtime=RUNTIME,
            architecture=lambda_.Architecture.X86_64,
            handler="handler.handler",
            code=self.code.code,
            layers=layers,
            environment={
                Env.STAGE: settings.stage,
                Env.POWERTOOLS_SERVICE_NAME: f"mlvault-{label.replace('/', '-')}",
                Env.POWERTOOLS_METRICS_NAMESPACE: NAMESPACE,
                **environment,
            },
            environment_encryption=platform.data_key,
            role=self.role,
            code_signing_config=platform.code_signing,
            dead_letter_queue=self.dlq,
            logging_format=lambda_.LoggingFormat.JSON,
            log_group=self.log_group,
            timeout=timeout or Duration.seconds(60),
            memory_size=memory_size,
            ephemeral_storage_size=Size.mebibytes(ephemeral_storage_mib) if ephemeral_storage_mib else None,
            reserved_concurrent_executions=settings.reserved_concurrency,
        )
        # Lambda decrypts the environment with the execution role when the function starts.
        self.allow(["kms:Decrypt"], [platform.data_key.key_arn])
        acknowledge_function(self.function, settings)

    def allow(self, actions: list[str], resources: list[str]) -> None:
        """Grant exact actions (no wildcards) on exact resources to this function's role."""
        wild = [a for a in actions if "*" in a]
        if wild:
            raise ValueError(f"grant exact actions, not wildcards: {wild}")
        self.role.add_to_policy(iam.PolicyStatement(actions=actions, resources=resources))

    def allow_objects(self, actions: list[str], bucket_role: str, reasons: Mapping[str, str]) -> None:
        """Grant exact actions on the objects under key patterns (`/<prefix>/*`) of one of the stage's buckets, in
        one statement, and acknowledge each pattern's wildcard (AwsSolutions-IAM5) with its reason."""
        stack = Stack.of(self)
        name = bucket_name(self, self.platform.settings, bucket_role)
        self.allow(actions, [f"arn:{stack.partition}:s3:::{name}{pattern}" for pattern in reasons])
        for pattern, reason in reasons.items():
            acknowledge(
                self.role,
                f"AwsSolutions-IAM5[Resource::{bucket_arn_ack(self.platform.settings, bucket_role, pattern)}]",
                reason,
            )

    def allow_data_key(self) -> None:
        """Encrypt and decrypt with the stage's data key (buckets, tables, queues and topic use it)."""
        self.allow(["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey"], [self.platform.data_key.key_arn])

    def allow_events(self) -> None:
        """Put events on the default event bus of the function's account and region."""
        stack = Stack.of(self)
        self.allow(
            ["events:PutEvents"], [f"arn:{stack.partition}:events:{stack.region}:{stack.account}:event-bus/default"]
        )
