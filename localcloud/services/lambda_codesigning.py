"""Lambda code signing (gap 20).

20. Lambda code signing. moto stores a function's CodeSigningConfigArn and never enforces it (GUIDE.md section
   9), and has no code signing configs at all. AWS checks the code of a function whose config it names when the
   code is deployed: CreateFunction, UpdateFunctionCode (from S3 or a zip), PublishVersion, and each layer
   version CreateFunction or UpdateFunctionConfiguration adds. A signature that fails the integrity check (the
   code changed after signing, a forged signature) is refused whatever the policy: InvalidCodeSignatureException.
   Code that is unsigned, signed by a profile version the config's AllowedPublishers do not list, expired or
   revoked is refused when the config's CodeSigningPolicies.UntrustedArtifactOnDeployment is `Enforce`
   (CodeVerificationFailedException), accepted with a warning when it is `Warn`. Here configs are recorded when
   provisioned (resources/cfn_lambda.py: AllowedPublishers.SigningProfileVersionArns and the policy; a function
   naming another config is refused with CodeSigningConfigNotFoundException), and each of those deployments
   checks the code's signature (services/signing_jobs.py, gap 19: the signature a signing job embedded, its job
   Succeeded and not revoked, its profile version allowed, its expiry not passed) before moto stores anything;
   a warning under `Warn` is recorded in the event log (`code-signing-warning`, with the reason), each refusal
   too (`code-signing-refused`). Not provided: the CodeSigningConfig APIs themselves (Create/Update/Delete,
   Put/DeleteFunctionCodeSigningConfig): configs come from the template only.
"""

from __future__ import annotations

import base64
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from localcloud.server import LocalCloud


def install(cloud: LocalCloud) -> None:
    from moto.awslambda.models import LambdaBackend

    original_create = LambdaBackend.create_function
    original_update_code = LambdaBackend.update_function_code
    original_update_configuration = LambdaBackend.update_function_configuration
    original_publish = LambdaBackend.publish_version

    def create_function(self: Any, spec: dict[str, Any]) -> Any:
        config = spec.get("CodeSigningConfigArn")
        if config:
            arn = f"arn:aws:lambda:{self.region_name}:{self.account_id}:function:{spec.get('FunctionName')}"
            check(cloud, config, code_of_spec(self, spec.get("Code") or {}), arn)
            for layer in spec.get("Layers") or []:
                check(cloud, config, _layer_code(self, layer), layer)
        return original_create(self, spec)

    def update_function_code(self: Any, function_name: str, qualifier: str, body: dict[str, Any]) -> Any:
        fn = self.get_function(function_name)
        if fn.code_signing_config_arn and not body.get("DryRun"):
            check(cloud, fn.code_signing_config_arn, code_of_spec(self, body), fn.function_arn)
        return original_update_code(self, function_name, qualifier, body)

    def update_function_configuration(self: Any, function_name: str, qualifier: str, body: dict[str, Any]) -> Any:
        fn = self.get_function(function_name)
        if fn.code_signing_config_arn:
            for layer in body.get("Layers") or []:
                check(cloud, fn.code_signing_config_arn, _layer_code(self, layer), layer)
        return original_update_configuration(self, function_name, qualifier, body)

    def publish_version(self: Any, function_name: str, description: str = "") -> Any:
        fn = self.get_function(function_name)
        if fn.code_signing_config_arn:
            check(cloud, fn.code_signing_config_arn, fn.code_bytes, fn.function_arn)
            for layer in fn.layers:
                check(cloud, fn.code_signing_config_arn, _layer_code(self, layer["Arn"]), layer["Arn"])
        return original_publish(self, function_name, description)

    LambdaBackend.create_function = create_function
    LambdaBackend.update_function_code = update_function_code
    LambdaBackend.update_function_configuration = update_function_configuration
    LambdaBackend.publish_version = publish_version


def _error(code: str, message: str, status: int = 400) -> Exception:
    from moto.awslambda.exceptions import LambdaClientError

    error = LambdaClientError(code, message)
    error.code = status
    return error


def code_of_spec(backend: Any, code: dict[str, Any]) -> bytes:
    """The bytes a Code (or UpdateFunctionCode) specification names: its zip, or that version of the S3 object."""
    from moto.s3.models import s3_backends

    if "ZipFile" in code:
        raw = code["ZipFile"]
        return base64.b64decode(raw) if isinstance(raw, str) else bytes(raw)
    if "S3Bucket" in code and "S3Key" in code:
        try:
            key = s3_backends[backend.account_id]["aws"].get_object(
                code["S3Bucket"], code["S3Key"], version_id=code.get("S3ObjectVersion")
            )
        except Exception:  # noqa: BLE001 - NoSuchBucket/NoSuchKey/NoSuchVersion: Lambda's own error below
            key = None
        if key is None:
            raise _error(
                "InvalidParameterValueException",
                f"Error occurred while GetObject. S3 Error Code: NoSuchKey. S3 Error Message: s3://{code['S3Bucket']}/"
                f"{code['S3Key']}{' version ' + code['S3ObjectVersion'] if code.get('S3ObjectVersion') else ''} does "
                "not exist.",
            )
        return bytes(key.value)
    raise _error("InvalidParameterValueException", "Code needs a ZipFile or an S3Bucket and S3Key.")


def _layer_code(backend: Any, layer_arn: str) -> bytes:
    layer = backend.layers_versions_by_arn(layer_arn)
    if layer is None:
        raise _error("InvalidParameterValueException", f"Layer version {layer_arn} does not exist.")
    return bytes(layer.code_bytes)


def check(cloud: LocalCloud, config_arn: str, code: bytes, subject: str) -> None:
    """Refuse or warn about code deployed under a code signing config, as Lambda does."""
    config = cloud.deployment.code_signing_configs.get(config_arn)
    if config is None:
        raise _error("CodeSigningConfigNotFoundException", f"Code signing configuration {config_arn} not found.", 404)
    policy = config["CodeSigningPolicies"].get("UntrustedArtifactOnDeployment", "Warn")
    try:
        claims = cloud.signer.signature_of(code)
    except ValueError as err:
        cloud.record({"kind": "code-signing-refused", "subject": subject, "reason": f"integrity: {err}"})
        raise _error(
            "InvalidCodeSignatureException", f"The code signature failed the integrity check: {err}."
        ) from None
    problem = _untrusted(cloud, config, claims)
    if not problem:
        return
    if policy == "Enforce":
        cloud.record({"kind": "code-signing-refused", "subject": subject, "reason": problem})
        raise _error(
            "CodeVerificationFailedException",
            "Lambda cannot deploy the function. The function or layer might be signed using a signature that the "
            f"client is not configured to accept. Check the provided signature for {subject}: {problem}.",
        )
    cloud.record({"kind": "code-signing-warning", "subject": subject, "config": config_arn, "reason": problem})


def _untrusted(cloud: LocalCloud, config: dict[str, Any], claims: dict[str, Any] | None) -> str:
    if claims is None:
        return "the code is not signed"
    job = cloud.signer.jobs.get(claims.get("jobId", ""))
    if job is None or job.status != "Succeeded":
        return f"no succeeded signing job {claims.get('jobId')} produced the signature"
    if job.revocation is not None:
        return f"the signature of signing job {job.job_id} was revoked: {job.revocation['reason']}"
    allowed = config.get("AllowedPublishers", {}).get("SigningProfileVersionArns", [])
    if claims.get("profileVersionArn") not in allowed:
        return f"signed by {claims.get('profileVersionArn')}, which the config's AllowedPublishers do not list"
    if int(claims.get("expiresAt", 0)) < time.time():
        return "the signature expired"
    return ""
