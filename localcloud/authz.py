"""Authorization of every request to the local cloud, as IAM authorizes same-account requests (gap 14).

14. IAM. moto enforces IAM only when asked (`set_initial_no_auth_action_count`), then only identity policies of
   its own access keys, without resource policies, most conditions or KMS key policies; the local cloud's own
   access keys (a function's role key, the developer's) are unknown to it. AWS authorizes every request: an
   explicit Deny in any applicable policy wins, otherwise an Allow is needed from the caller's identity
   policies or the resource's policy, and for KMS from the key policy (identity policies count only where the
   key policy delegates to the account); sts:AssumeRole needs the role to exist and its trust policy to allow
   the caller. Here every request (S3 through services/s3.py, every other service through
   `BaseResponse.call_action`) is mapped to its IAM actions, resources and condition keys (iam_actions.py,
   services/s3_requests.py) and evaluated (iam_policy.py) for the caller its access key names:
   - the developer's key: the local developer, an administrator (`*` on `*`), like the deployer (the CDK
     bootstrap's CloudFormation execution role, which holds AdministratorAccess);
   - a role's local key (`runtime.access_key_for(role ARN)`, which functions and state machines sign with): that
     role, with its inline and attached policies as provisioned, or as changed since through IAM;
   - keys of sessions assumed through STS: the assumed role, limited by the session policy if one was passed;
   - any other key: refused, as AWS refuses an unknown access key (UnrecognizedClientException,
     InvalidClientTokenId, InvalidAccessKeyId).
   Resource policies read: bucket, queue, topic and Lambda function policies, key policies, trust policies.
   Denied requests fail with the service's own error (AccessDeniedException for JSON services and Lambda,
   AccessDenied for S3, SQS, STS, IAM and CloudWatch, AuthorizationError for SNS) and AWS's wording, and are
   recorded in the event log (`access-denied`, with the action, resource, principal and the deciding statement).
   Condition keys set on every request: aws:PrincipalArn, aws:PrincipalAccount, aws:PrincipalType,
   aws:SecureTransport (true: the local cloud serves plain HTTP on loopback only, in place of TLS),
   aws:RequestedRegion, aws:CurrentTime, aws:EpochTime, aws:SourceIp; service keys as iam_actions.py lists.
   Not evaluated: permissions boundaries, SCPs, grants, signatures of requests (any secret is accepted; a function
   URL's requests are the exception: services/function_urls.py verifies them, gap 25).
"""

from __future__ import annotations

import json
import re
import threading
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from localcloud.iam_actions import Need, Where, needs
from localcloud.iam_policy import ADMINISTRATOR, Decision, Policies, Request, evaluate

if TYPE_CHECKING:
    from localcloud.server import LocalCloud

# The error each service answers a denied request with: (code, HTTP status).
DENIED = {
    "sqs": ("AccessDenied", 403),
    "sns": ("AuthorizationError", 403),
    "cloudwatch": ("AccessDenied", 403),
    "sts": ("AccessDenied", 403),
    "iam": ("AccessDenied", 403),
    "lambda": ("AccessDeniedException", 403),
    "signer": ("AccessDeniedException", 403),
}
DENIED_DEFAULT = ("AccessDeniedException", 400)
UNKNOWN_KEY = {
    "sqs": ("InvalidClientTokenId", 403),
    "sns": ("InvalidClientTokenId", 403),
    "cloudwatch": ("InvalidClientTokenId", 403),
    "sts": ("InvalidClientTokenId", 403),
    "iam": ("InvalidClientTokenId", 403),
    "lambda": ("UnrecognizedClientException", 403),
    "signer": ("UnrecognizedClientException", 403),
}
UNKNOWN_KEY_DEFAULT = ("UnrecognizedClientException", 400)
UNKNOWN_KEY_MESSAGE = "The security token included in the request is invalid."


@dataclass(frozen=True)
class Caller:
    arn: str  # the principal policies name: the role ARN for its sessions, the user ARN
    display: str  # how AWS names the caller in an error: arn:aws:sts::<account>:assumed-role/<role>/<session>
    administrator: bool = False
    session_policy: Mapping[str, Any] | None = None

    @property
    def is_role(self) -> bool:
        return ":role/" in self.arn


class AccessDenied(Exception):
    """A request IAM refuses; `message` is AWS's wording."""

    def __init__(self, caller: Caller, need: Need, decision: Decision) -> None:
        kind = decision.policy or "identity-based"
        if decision.reason == "explicit deny":
            why = f"with an explicit deny in a{'n' if kind[0] in 'ai' else ''} {kind} policy"
        else:
            why = f"because no {kind} policy allows the {need.action} action"
        super().__init__(
            f"User: {caller.display} is not authorized to perform: {need.action} on resource: {need.resource} {why}"
        )
        self.message = str(self)
        self.caller, self.need, self.decision = caller, need, decision


class KmsDenied(AccessDenied):
    """A request a service makes of KMS on the caller's behalf (an encrypted queue or topic) that KMS refuses."""


KMS_DENIED = {"sqs": ("KmsAccessDenied", 400), "sns": ("KMSAccessDenied", 400)}


class Authorizer:
    def __init__(self, cloud: LocalCloud) -> None:
        self._cloud = cloud
        self._role_keys: dict[str, str] = {}
        self._lock = threading.Lock()

    # --- who is calling -------------------------------------------------------------------------------

    def caller(self, access_key: str) -> Caller | None:
        """The caller an access key stands for, or None for a key the account does not know."""
        from localcloud.server import DEVELOPER_ACCESS_KEY, DEVELOPER_ARN

        if access_key == DEVELOPER_ACCESS_KEY:
            return Caller(DEVELOPER_ARN, DEVELOPER_ARN, administrator=True)
        known = self._cloud.deployment.principals.get(access_key)
        if known is not None:
            return self._role_caller(known, session=known.rsplit("/", 1)[-1])
        from moto.sts.models import sts_backends

        assumed = sts_backends[self._cloud.account]["aws"].get_assumed_role_from_access_key(access_key)
        if assumed is not None:
            policy = json.loads(assumed.policy) if assumed.policy else None
            return self._role_caller(assumed.role_arn, session=assumed.session_name, session_policy=policy)
        role = self._role_of_local_key(access_key)
        return self._role_caller(role, session=role.rsplit("/", 1)[-1]) if role else None

    def caller_for_role(self, role_arn: str, session: str = "local-cloud") -> Caller:
        """The caller a service acting with a role is (EventBridge with a target's role)."""
        return self._role_caller(role_arn, session=session)

    def _role_caller(self, arn: str, *, session: str, session_policy: Any = None) -> Caller:
        administrator = arn == self._cloud.deployer_arn
        if ":role/" not in arn:
            return Caller(arn, arn, administrator=administrator)
        name = arn.rsplit("/", 1)[-1]
        display = f"arn:aws:sts::{arn.split(':')[4]}:assumed-role/{name}/{session}"
        return Caller(arn, display, administrator=administrator, session_policy=session_policy)

    def _role_of_local_key(self, access_key: str) -> str | None:
        """A role that acts through its local key (a state machine's role calling Lambda, a function's role)."""
        from moto.iam.models import iam_backends

        from localcloud.runtime import access_key_for

        with self._lock:
            if access_key not in self._role_keys:
                for role in iam_backends[self._cloud.account]["global"].roles.values():
                    self._role_keys.setdefault(access_key_for(role.arn), role.arn)
            return self._role_keys.get(access_key)

    # --- what applies ---------------------------------------------------------------------------------

    def identity_policies(self, caller: Caller) -> list[Mapping[str, Any]]:
        if caller.administrator:
            return [ADMINISTRATOR]
        if not caller.is_role:
            return []
        from moto.iam.models import iam_backends

        backend = iam_backends[self._cloud.account]["global"]
        try:
            role = backend.get_role_by_arn(caller.arn)
        except Exception:  # noqa: BLE001 - a role that does not exist (any more) has no policies
            return []
        documents = [_document(d) for d in role.policies.values()]
        for policy in role.managed_policies.values():
            documents += [_document(v.document) for v in policy.versions if v.is_default]
        return documents

    def context(self, caller: Caller) -> dict[str, Any]:
        now = datetime.now(UTC)
        return {
            "aws:PrincipalArn": caller.arn,
            "aws:PrincipalAccount": self._cloud.account,
            "aws:PrincipalType": "AssumedRole" if caller.is_role else "User",
            "aws:SecureTransport": "true",
            "aws:RequestedRegion": self._cloud.region,
            "aws:CurrentTime": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "aws:EpochTime": str(int(time.time())),
            "aws:SourceIp": "127.0.0.1",
        }

    def decide(
        self,
        caller: Caller,
        need: Need,
        *,
        resource_policy: Mapping[str, Any] | None = None,
        requires_resource_allow: bool = False,
        extra_context: Mapping[str, Any] | None = None,
    ) -> Decision:
        request = Request(
            principal_arn=caller.arn,
            action=need.action,
            resource=need.resource,
            context={**self.context(caller), **(extra_context or {}), **need.context},
        )
        return evaluate(
            request,
            Policies(
                identity=self.identity_policies(caller),
                resource=resource_policy,
                session=caller.session_policy,
                requires_resource_allow=requires_resource_allow,
            ),
        )

    def check(self, caller: Caller, need: Need, *, record_kind: str = "access-denied", **kwargs: Any) -> None:
        """Raise AccessDenied (recorded in the event log as `record_kind`) unless the request is allowed."""
        decision = self.decide(caller, need, **kwargs)
        if not decision.allowed:
            self._cloud.record(
                {
                    "kind": record_kind,
                    "principal": caller.arn,
                    "action": need.action,
                    "resource": need.resource,
                    "reason": decision.reason,
                    "policy": decision.policy,
                    "statement": decision.sid,
                }
            )
            raise AccessDenied(caller, need, decision)

    def authorize(self, caller: Caller, service: str, need: Need) -> None:
        """A request with the resource policy its resource keeps; then what the service asks of KMS on the caller's
        behalf for an encrypted queue or topic (kms:GenerateDataKey and kms:Decrypt to send, kms:Decrypt to
        receive), with kms:ViaService."""
        policy, required = self.resource_policy(service, need)
        self.check(caller, need, resource_policy=policy, requires_resource_allow=required)
        for kms_need in self._kms_on_behalf(need):
            try:
                policy, _ = self.resource_policy("kms", kms_need)
                self.check(caller, kms_need, resource_policy=policy, requires_resource_allow=True)
            except AccessDenied as denied:
                raise KmsDenied(denied.caller, denied.need, denied.decision) from None

    def _kms_on_behalf(self, need: Need) -> list[Need]:
        service = need.action.split(":")[0]
        actions = {
            "sqs:SendMessage": ("kms:GenerateDataKey", "kms:Decrypt"),
            "sqs:ReceiveMessage": ("kms:Decrypt",),
            "sns:Publish": ("kms:GenerateDataKey", "kms:Decrypt"),
        }.get(need.action)
        if not actions or not need.resource.startswith("arn:"):
            return []
        key_id = None
        region, account, name = need.resource.split(":")[3], need.resource.split(":")[4], need.resource.split(":")[5]
        if service == "sqs":
            from moto.sqs.models import sqs_backends

            queue = sqs_backends[account][region].queues.get(name)
            key_id = getattr(queue, "kms_master_key_id", None) if queue is not None else None
        elif service == "sns":
            from moto.sns.models import sns_backends

            topic = sns_backends[account][region].topics.get(need.resource)
            key_id = getattr(topic, "kms_master_key_id", None) if topic is not None else None
        if not key_id or key_id.startswith("alias/aws/"):
            return []  # unencrypted, or an AWS managed key: its key policy lets the service act for the account
        key = self._kms_key_arn(key_id) or key_id
        via = {"kms:ViaService": f"{service}.{region}.amazonaws.com", "kms:CallerAccount": account}
        return [Need(action, key, via) for action in actions]

    def resource_policy(self, service: str, need: Need) -> tuple[Mapping[str, Any] | None, bool]:
        """(the resource's policy, whether an Allow of it is required) for a request's resource: the policy of the
        service the action belongs to (a Lambda CreateFunction also reads its S3 code object)."""
        arn = need.resource
        prefix = need.action.split(":")[0]
        if need.action == "sts:AssumeRole" or need.action.startswith("sts:AssumeRoleWith"):
            return self._trust_policy(arn), True
        if prefix == "kms":  # a key's policy decides; CreateKey, ListKeys, ... (resource "*") have none
            return (self._key_policy(arn), True) if ":key/" in arn else (None, False)
        if not arn.startswith("arn:"):
            return None, False
        if prefix == "s3":
            from moto.s3.models import s3_backends

            bucket = s3_backends[self._cloud.account]["aws"].buckets.get(
                arn.removeprefix("arn:aws:s3:::").split("/")[0]
            )
            return (_document(bucket.policy) if bucket is not None and bucket.policy else None), False
        if prefix == "sqs":
            from moto.sqs.models import sqs_backends

            queue = sqs_backends[arn.split(":")[4]][arn.split(":")[3]].queues.get(arn.split(":")[5])
            return (_document(queue.policy) if queue is not None and queue.policy else None), False
        if prefix == "sns":
            from moto.sns.models import sns_backends

            topic = sns_backends[arn.split(":")[4]][arn.split(":")[3]].topics.get(arn)
            return (_document(topic.policy) if topic is not None else None), False
        if prefix == "lambda" and ":function:" in arn:
            return self._function_policy(arn), False
        return None, False

    def _trust_policy(self, role_arn: str) -> Mapping[str, Any] | None:
        from moto.iam.models import iam_backends

        try:
            role = iam_backends[self._cloud.account]["global"].get_role_by_arn(role_arn)
        except Exception:  # noqa: BLE001 - a role that does not exist cannot be assumed: no policy allows it
            return None
        return _document(role.assume_role_policy_document)

    def _key_policy(self, key_arn: str) -> Mapping[str, Any] | None:
        from moto.kms.models import kms_backends

        key = kms_backends[key_arn.split(":")[4]][key_arn.split(":")[3]].keys.get(key_arn.rsplit("/", 1)[-1])
        return _document(key.policy) if key is not None and key.policy else None

    def _function_policy(self, arn: str) -> Mapping[str, Any] | None:
        from moto.awslambda.models import lambda_backends

        name = arn.split(":function:", 1)[1].split(":")[0]
        try:
            fn = lambda_backends[arn.split(":")[4]][arn.split(":")[3]].get_function(name)
            return fn.policy.get_policy()["Policy"] if fn.policy.statements else None
        except Exception:  # noqa: BLE001 - an unknown function: moto answers ResourceNotFound after this
            return None

    def where(self) -> Where:
        return Where(
            account=self._cloud.account,
            region=self._cloud.region,
            kms_key_arn=self._kms_key_arn,
            kms_key_of_ciphertext=self._kms_key_of_ciphertext,
            machine_of_token=self._machine_of_token,
        )

    def _kms_key_arn(self, key_id: str) -> str | None:
        from moto.kms.models import kms_backends

        backend = kms_backends[self._cloud.account][self._cloud.region]
        try:
            return backend.keys[backend.any_id_to_key_id(key_id)].arn
        except Exception:  # noqa: BLE001 - an unknown key or alias
            return None

    def _kms_key_of_ciphertext(self, blob: Any) -> str | None:
        from moto.kms.utils import _deserialize_ciphertext_blob

        try:
            return _deserialize_ciphertext_blob(bytes(blob)).key_id
        except Exception:  # noqa: BLE001 - not a ciphertext of this KMS: moto refuses it after this
            return None

    def _machine_of_token(self, token: str) -> str | None:
        from moto.stepfunctions.responses import get_backend

        backend = get_backend(self._cloud.account, self._cloud.region)  # the executing (parser) backend
        for machine in list(getattr(backend, "state_machines", [])):
            for execution in list(getattr(machine, "executions", [])):
                worker = getattr(execution, "exec_worker", None)
                pool = getattr(getattr(getattr(worker, "env", None), "callback_pool_manager", None), "_pool", {})
                if token in pool:
                    return machine.arn
        return None


def _document(text: Any) -> Mapping[str, Any]:
    if isinstance(text, Mapping):
        return text
    try:
        return json.loads(text)
    except ValueError:
        return json.loads(unquote(text))


# --- the hook: every request of every service but S3 ----------------------------------------------------


def install(cloud: LocalCloud) -> None:
    from moto.core.responses import BaseResponse

    authorizer = cloud.authorizer
    original = BaseResponse.call_action

    def call_action(self: Any) -> Any:
        service = self.boto3_service_name
        if not service or service == "s3":
            return original(self)
        caller = authorizer.caller(access_key_of(self.headers, self.querystring))
        if caller is None:
            code, status = UNKNOWN_KEY.get(service, UNKNOWN_KEY_DEFAULT)
            return error_response(self, code, status, UNKNOWN_KEY_MESSAGE)
        operation = self._get_action()
        try:
            for need in needs(service, operation, _params(self, operation), authorizer.where()):
                authorizer.authorize(caller, service, need)
        except AccessDenied as denied:
            if isinstance(denied, KmsDenied) and service in KMS_DENIED:
                code, status = KMS_DENIED[service]
            else:
                code, status = DENIED.get(service, DENIED_DEFAULT)
            return error_response(self, code, status, denied.message)
        return original(self)

    BaseResponse.call_action = call_action


_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/")
_SIGV2 = re.compile(r"AWS ([^:\s]+):")


def access_key_of(headers: Any, query: Mapping[str, Any]) -> str:
    """The access key id a request is signed with (SigV4 Authorization header, or a presigned URL's
    X-Amz-Credential); "" for an unsigned request. moto's own parsing only knows 20-character keys."""
    authorization = headers.get("Authorization", "") or headers.get("authorization", "")
    match = _CREDENTIAL.search(authorization) or _SIGV2.match(authorization)
    if match:
        return match.group(1)
    for parameter in ("X-Amz-Credential", "AWSAccessKeyId"):  # presigned URLs: SigV4, SigV2
        value = query.get(parameter) or ""
        value = value[0] if isinstance(value, list) else value
        if value:
            return unquote(value).split("/", 1)[0]
    return ""


def error_response(response: Any, code: str, status: int, message: str) -> Any:
    """The error as the service's protocol serializes it (JSON, query XML, CBOR), with the given status."""
    from moto.core.exceptions import ServiceException
    from moto.core.responses import ActionResult

    class RequestRefused(ServiceException):  # defined here: moto looks its module up as a service otherwise
        pass

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the code is not modelled in every service's shapes; AWS sends it anyway
        _, headers, body = response.serialized(ActionResult(RequestRefused(code, message)))
    headers["status"] = str(status)
    return status, headers, body


def _params(response: Any, operation: str) -> Mapping[str, Any]:
    """The request's parameters as botocore's model names them."""
    from moto.core.parse import PROTOCOL_PARSERS
    from moto.core.request import determine_request_protocol
    from moto.core.responses import get_service_model

    model = get_service_model(response.boto3_service_name)
    request = response.normalized_request
    protocol = determine_request_protocol(model, request.content_type)
    parser = PROTOCOL_PARSERS[protocol](model.operation_model(operation))
    return dict(
        parser.parse(
            {
                "method": request.method,
                "values": request.values,
                "headers": request.headers,
                "body": request.data,
                "url_path": request.path,
                "url_params": response.uri_match,
            }
        )
    )
