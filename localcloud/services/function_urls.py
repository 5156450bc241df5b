"""Lambda function URLs (gap 25).

25. Lambda function URLs. moto's CreateFunctionUrlConfig refuses a Qualifier, has no ListFunctionUrlConfigs, and
   its URLs answer nothing. Here Create/Get/Update/Delete/ListFunctionUrlConfigs follow botocore's `lambda` model:
   one URL per function or alias (`Qualifier` an alias name or $LATEST; an alias that does not exist is
   ResourceNotFoundException, a second URL ResourceConflictException), AuthType AWS_IAM or NONE, InvokeMode
   BUFFERED (RESPONSE_STREAM is not run locally: NotImplemented). The URL has AWS's 32-character url-id and answers
   on the local endpoint, path-based: `http://127.0.0.1:<port>/<url-id>/` (the request's path after the url-id is
   the function's rawPath); a request to the local port whose Host is AWS's `<url-id>.lambda-url.<region>.on.aws`
   (or `.localhost`) is served the same. `AWS::Lambda::Url` and AddPermission's FunctionUrlAuthType and
   InvokedViaFunctionUrl (conditions `lambda:FunctionUrlAuthType`, `lambda:InvokedViaFunctionUrl`, in the policy of
   the function or alias the permission names) come from templates too (resources/cfn_lambda.py).
   A request to an AWS_IAM URL must be signed with SigV4 for service `lambda` in the URL's region, and the
   signature is verified (sigv4_verify.py: the local cloud knows every secret it accepts); unsigned or wrongly
   signed requests are refused 403 as a function URL refuses them. Then, as for URLs created since October 2025,
   the caller needs both `lambda:InvokeFunctionUrl` (with lambda:FunctionUrlAuthType) and `lambda:InvokeFunction`
   (with lambda:InvokedViaFunctionUrl "true") on the URL's function or alias, from its identity policies or the
   function's resource policy (authz.py, gap 14); a NONE URL needs both from the resource policy, for anyone.
   A refusal is 403 {"Message":"Forbidden"} and an `access-denied` record. The request then invokes the alias as
   Invoke does (its routing weights applied, gap 10) with the payload format 2.0 event, and the function's result
   becomes the HTTP response (function_url_payload.py). Requests over 6 MB are refused (413). CORS settings are
   stored, not applied.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from localcloud.function_url_payload import BAD_GATEWAY, http_response, request_event

if TYPE_CHECKING:
    from localcloud.server import LocalCloud

MAX_REQUEST = 6 * 1024 * 1024
QUALIFIER = re.compile(r"(^\$LATEST$)|((?!^[0-9]+$)([a-zA-Z0-9-_]+))")
URL_ID = r"[a-z0-9]{32}"
HOST_FORM = re.compile(rf"^({URL_ID})\.lambda-url\.[a-z0-9-]+\.(?:on\.aws|localhost)(?::\d+)?$")
PATH_FORM = re.compile(rf"^/({URL_ID})(/.*)?$")
REASONS = {200: "OK", 403: "Forbidden", 404: "Not Found", 413: "Payload Too Large", 502: "Bad Gateway"}


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class UrlConfig:
    url_id: str
    function_arn: str  # qualified by the alias for an alias's URL
    function_name: str
    qualifier: str | None
    auth_type: str
    url: str
    cors: dict[str, Any] | None = None
    invoke_mode: str = "BUFFERED"
    created: str = field(default_factory=_now)
    last_modified: str = field(default_factory=_now)

    def describe(self, *, last_modified: bool = True) -> dict[str, Any]:
        out = {
            "FunctionUrl": self.url,
            "FunctionArn": self.function_arn,
            "AuthType": self.auth_type,
            "CreationTime": self.created,
            "InvokeMode": self.invoke_mode,
        }
        if self.cors:
            out["Cors"] = self.cors
        if last_modified:
            out["LastModifiedTime"] = self.last_modified
        return out


class FunctionUrls:
    def __init__(self, cloud: LocalCloud) -> None:
        self._cloud = cloud
        self.configs: dict[str, UrlConfig] = {}  # url-id -> config
        self._lock = threading.Lock()

    def find(self, name: str, qualifier: str | None) -> UrlConfig | None:
        return next((c for c in self.configs.values() if c.function_name == name and c.qualifier == qualifier), None)

    def target(self, host: str, raw_path: str) -> tuple[UrlConfig, str] | None:
        """(the URL config, the function's rawPath) a request to the local endpoint is for, if any."""
        match = HOST_FORM.match(host.lower())
        if match and match.group(1) in self.configs:
            return self.configs[match.group(1)], raw_path or "/"
        match = PATH_FORM.match(raw_path)
        if match and match.group(1) in self.configs:
            return self.configs[match.group(1)], match.group(2) or "/"
        return None


# --- the API ----------------------------------------------------------------------------------------------


def _function(cloud: LocalCloud, path: str, query: dict[str, Any]) -> tuple[Any, str, str | None]:
    """(moto's $LATEST function, its name, the qualifier) a URL config request names."""
    from moto.awslambda.exceptions import InvalidParameterValueException, LambdaClientError
    from moto.awslambda.models import lambda_backends

    from localcloud.services.awslambda import _split_function

    name, in_name = _split_function(unquote(path.rstrip("/").split("/")[-2]))
    qualifier = (query.get("Qualifier") or [None])[0] or in_name
    if in_name and query.get("Qualifier") and in_name != query["Qualifier"][0]:
        raise InvalidParameterValueException("The derived qualifier from the function name does not match.")
    if qualifier is not None and not QUALIFIER.fullmatch(qualifier):
        raise LambdaClientError(
            "ValidationException",
            f"1 validation error detected: Value '{qualifier}' at 'qualifier' failed to satisfy constraint: Member "
            "must satisfy regular expression pattern: (^\\$LATEST$)|((?!^[0-9]+$)([a-zA-Z0-9-_]+))",
        )
    storage = lambda_backends[cloud.account][cloud.region]._lambdas
    fn = storage.get_function_by_name_with_qualifier(name, None)  # ResourceNotFoundException as Lambda answers
    if qualifier and qualifier != "$LATEST":
        storage.get_alias(qualifier, name)  # ResourceNotFoundException for an alias that does not exist
    return fn, name, qualifier


def _validated(body: dict[str, Any], *, create: bool) -> dict[str, Any]:
    from moto.awslambda.exceptions import LambdaClientError

    auth = body.get("AuthType")
    if (create or auth is not None) and auth not in ("AWS_IAM", "NONE"):
        raise LambdaClientError(
            "ValidationException",
            f"1 validation error detected: Value '{auth}' at 'authType' failed to satisfy constraint: Member must "
            "satisfy enum value set: [NONE, AWS_IAM]",
        )
    mode = body.get("InvokeMode", "BUFFERED")
    if mode == "RESPONSE_STREAM":
        raise LambdaClientError("NotImplemented", "The local cloud does not stream responses (RESPONSE_STREAM)")
    if mode != "BUFFERED":
        raise LambdaClientError("ValidationException", f"Value '{mode}' at 'invokeMode' failed to satisfy constraint")
    return body


def _api(cloud: LocalCloud, urls: FunctionUrls) -> None:
    import moto.awslambda.urls as lambda_urls
    from moto.awslambda.exceptions import GenericResourcNotFound, LambdaClientError
    from moto.awslambda.responses import LambdaResponse

    lambda_urls.url_paths[r"{0}/(?P<api_version>[^/]+)/functions/(?P<function_name>[\w_:%-]+)/urls/?$"] = (
        LambdaResponse.dispatch
    )

    def create(self: Any) -> Any:
        fn, name, qualifier = _function(cloud, self.path, self.querystring)
        body = _validated(json.loads(self.body or "{}"), create=True)
        arn = fn.function_arn + (f":{qualifier}" if qualifier else "")
        with urls._lock:
            if urls.find(name, qualifier) is not None:
                error = LambdaClientError(
                    "ResourceConflictException",
                    f"Failed to create function url config for [functionArn = {arn}]. Error message:  "
                    "FunctionUrlConfig exists for this Lambda function",
                )
                error.code = 409
                raise error
            url_id = secrets.token_hex(16)
            config = UrlConfig(
                url_id=url_id,
                function_arn=arn,
                function_name=name,
                qualifier=qualifier,
                auth_type=body["AuthType"],
                url=f"{cloud.endpoint}/{url_id}/",
                cors=body.get("Cors"),
            )
            urls.configs[url_id] = config
        cloud.record({"kind": "function-url", "url": config.url, "function": arn, "auth": config.auth_type})
        return 201, {"status": 201}, json.dumps(config.describe(last_modified=False))

    def existing(self: Any) -> UrlConfig:
        _, name, qualifier = _function(cloud, self.path, self.querystring)
        config = urls.find(name, qualifier)
        if config is None:
            raise GenericResourcNotFound()
        return config

    def get(self: Any) -> Any:
        return 200, {"status": 200}, json.dumps(existing(self).describe())

    def update(self: Any) -> Any:
        config = existing(self)
        body = _validated(json.loads(self.body or "{}"), create=False)
        config.auth_type = body.get("AuthType") or config.auth_type
        config.cors = body.get("Cors", config.cors)
        config.last_modified = _now()
        return 200, {"status": 200}, json.dumps(config.describe())

    def delete(self: Any) -> Any:
        config = existing(self)
        with urls._lock:
            urls.configs.pop(config.url_id, None)
        return 204, {"status": 204}, ""

    def list_configs(self: Any) -> Any:
        _, name, _ = _function(cloud, self.path, {})
        configs = sorted((c for c in urls.configs.values() if c.function_name == name), key=lambda c: c.created)
        start = int((self.querystring.get("Marker") or ["0"])[0])
        size = int((self.querystring.get("MaxItems") or ["50"])[0])
        out: dict[str, Any] = {"FunctionUrlConfigs": [c.describe() for c in configs[start : start + size]]}
        if start + size < len(configs):
            out["NextMarker"] = str(start + size)
        return 200, {"status": 200}, json.dumps(out)

    LambdaResponse.create_function_url_config = create
    LambdaResponse.get_function_url_config = get
    LambdaResponse.update_function_url_config = update
    LambdaResponse.delete_function_url_config = delete
    LambdaResponse.list_function_url_configs = list_configs


def _permissions() -> None:
    """AddPermission's FunctionUrlAuthType and InvokedViaFunctionUrl become the statement's conditions, and a
    permission of an alias or version is a statement of that qualified ARN, kept with the function's (which authz.py
    reads: a statement applies to the ARN it names), GetPolicy with a Qualifier answering that ARN's statements only,
    as Lambda keeps a policy per version and alias (moto kept neither)."""
    from moto.awslambda.models import LambdaBackend

    from localcloud.services.awslambda import _split_function

    def add_permission(self: Any, function_name: str, qualifier: str | None, raw: str) -> dict[str, Any]:
        body = json.loads(raw)
        conditions: dict[str, dict[str, str]] = {}
        auth = body.pop("FunctionUrlAuthType", None)
        if auth is not None:
            conditions.setdefault("StringEquals", {})["lambda:FunctionUrlAuthType"] = auth
        if body.pop("InvokedViaFunctionUrl", None):
            conditions.setdefault("Bool", {})["lambda:InvokedViaFunctionUrl"] = "true"
        name, in_name = _split_function(function_name)
        qualifier = qualifier or in_name
        if qualifier and qualifier != "$LATEST" and not qualifier.isdigit():
            self._lambdas.get_alias(qualifier, name)  # ResourceNotFoundException for an unknown alias
        fn = self._lambdas.get_function_by_name_with_qualifier(name, None)
        statement, _ = fn.policy.add_statement(json.dumps(body), qualifier if qualifier != "$LATEST" else None)
        for operator, keys in conditions.items():
            statement.setdefault("Condition", {}).setdefault(operator, {}).update(keys)
        return statement

    def get_policy(self: Any, function_name: str, qualifier: str | None = None) -> str:
        from moto.awslambda.exceptions import GenericResourcNotFound

        name, in_name = _split_function(function_name)
        qualifier = qualifier or in_name
        fn = self._lambdas.get_function_by_name_with_qualifier(name, None)
        arn = fn.function_arn + (f":{qualifier}" if qualifier and qualifier != "$LATEST" else "")
        statements = [s for s in fn.policy.statements if s.get("Resource") == arn]  # the policy of that ARN alone
        if not statements:
            raise GenericResourcNotFound()
        policy = {"Version": "2012-10-17", "Id": "default", "Statement": statements}
        return json.dumps({"Policy": json.dumps(policy), "RevisionId": fn.policy.revision})

    def remove_permission(self: Any, function_name: str, sid: str, revision: str = "") -> None:
        fn = self._lambdas.get_function_by_name_with_qualifier(_split_function(function_name)[0], None)
        fn.policy.del_statement(sid, revision)

    LambdaBackend.add_permission = add_permission
    LambdaBackend.get_policy = get_policy
    LambdaBackend.remove_permission = remove_permission


# --- serving ----------------------------------------------------------------------------------------------


def _headers(environ: dict[str, Any]) -> dict[str, str]:
    headers = {k[5:].replace("_", "-").lower(): str(v) for k, v in environ.items() if k.startswith("HTTP_")}
    for key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        if environ.get(key):
            headers[key.replace("_", "-").lower()] = str(environ[key])
    return headers


def _body(environ: dict[str, Any]) -> bytes:
    length = environ.get("CONTENT_LENGTH")
    stream = environ["wsgi.input"]
    if length:
        return stream.read(int(length))
    return stream.read() if environ.get("wsgi.input_terminated") else b""


def _denied(code: str, message: str) -> tuple[int, list[tuple[str, str]], bytes]:
    key = "Message" if code == "AccessDeniedException" else "message"
    return 403, [("Content-Type", "application/json"), ("x-amzn-ErrorType", code)], json.dumps({key: message}).encode()


class Server:
    """Answers the requests to function URLs that reach the local endpoint."""

    def __init__(self, cloud: LocalCloud, urls: FunctionUrls) -> None:
        self._cloud, self._urls = cloud, urls

    def serve(self, config: UrlConfig, raw_path: str, environ: dict[str, Any]) -> tuple[int, list, bytes]:
        from localcloud.sigv4_verify import SignatureRefused, verify

        raw_uri = environ.get("RAW_URI") or environ.get("REQUEST_URI") or environ.get("PATH_INFO", "/")
        signed_path, _, raw_query = raw_uri.partition("?")
        headers = _headers(environ)
        body = _body(environ)
        if len(body) > MAX_REQUEST:
            message = f"Request must be smaller than {MAX_REQUEST} bytes for the InvokeFunction operation"
            return 413, [("Content-Type", "application/json")], json.dumps({"Message": message}).encode()
        iam = None
        caller = None
        if config.auth_type == "AWS_IAM":
            try:
                signed = verify(
                    method=environ["REQUEST_METHOD"],
                    raw_path=signed_path,
                    raw_query=raw_query,
                    headers=headers,
                    body=body,
                    service="lambda",
                    region=self._cloud.region,
                    secret_of=self._secret_of,
                )
            except SignatureRefused as refused:
                self._cloud.record({"kind": "function-url-refused", "url": config.url, "reason": refused.message})
                return _denied(refused.code, refused.message)
            caller = self._cloud.authorizer.caller(signed.access_key)
            iam = self._iam(signed.access_key, caller)
        if not self._allowed(config, caller):
            return _denied("AccessDeniedException", "Forbidden")
        event = request_event(
            url_id=config.url_id,
            region=self._cloud.region,
            account=self._cloud.account,
            method=environ["REQUEST_METHOD"],
            raw_path=raw_path,
            raw_query=raw_query,
            headers=headers,
            body=body,
            source_ip=environ.get("REMOTE_ADDR", "127.0.0.1"),
            iam=iam,
        )
        return self._invoke(config, event)

    def _allowed(self, config: UrlConfig, caller: Any) -> bool:
        from localcloud.authz import AccessDenied, Caller
        from localcloud.iam_actions import Need

        authorizer = self._cloud.authorizer
        who = caller if caller is not None else Caller("", "anonymous")
        policy = authorizer._function_policy(config.function_arn)
        try:
            for need in (
                Need("lambda:InvokeFunctionUrl", config.function_arn, {"lambda:FunctionUrlAuthType": config.auth_type}),
                Need("lambda:InvokeFunction", config.function_arn, {"lambda:InvokedViaFunctionUrl": "true"}),
            ):
                authorizer.check(who, need, resource_policy=policy, requires_resource_allow=caller is None)
        except AccessDenied:
            return False
        return True

    def _invoke(self, config: UrlConfig, event: dict[str, Any]) -> tuple[int, list, bytes]:
        from moto.awslambda.models import lambda_backends

        from localcloud.services.awslambda import route

        backend = lambda_backends[self._cloud.account][self._cloud.region]
        fn, invoked_arn = route(backend, config.function_name, config.qualifier)
        result = self._cloud.runtime.invoke(
            fn.function_name,
            event,
            dict(fn.environment_vars or {}),
            source="function-url",
            version=str(fn.version),
            invoked_arn=invoked_arn,
        )
        status, headers, data = BAD_GATEWAY if result.errored else http_response(result.payload)
        self._cloud.record(
            {"kind": "function-url-invoke", "url": config.url, "version": str(fn.version), "status": status}
        )
        return status, [*headers, ("x-amzn-RequestId", event["requestContext"]["requestId"])], data

    def _secret_of(self, access_key: str) -> Any:
        from moto.sts.models import sts_backends

        from localcloud.server import DEVELOPER_ACCESS_KEY, SECRET
        from localcloud.sigv4_verify import Secret

        if access_key == DEVELOPER_ACCESS_KEY or access_key in self._cloud.deployment.principals:
            return Secret(SECRET)
        assumed = sts_backends[self._cloud.account]["aws"].get_assumed_role_from_access_key(access_key)
        if assumed is not None:
            expires = assumed.expiration  # moto keeps it naive, in UTC
            expires = expires.replace(tzinfo=UTC) if expires.tzinfo is None else expires
            return Secret(assumed.secret_access_key, assumed.session_token, expires)
        if self._cloud.authorizer._role_of_local_key(access_key):
            return Secret(SECRET)
        return None

    def _iam(self, access_key: str, caller: Any) -> dict[str, Any]:
        from moto.iam.models import iam_backends
        from moto.sts.models import sts_backends

        assumed = sts_backends[self._cloud.account]["aws"].get_assumed_role_from_access_key(access_key)
        if assumed is not None:
            caller_id = assumed.user_id
        elif caller.is_role:
            try:
                role_id = iam_backends[self._cloud.account]["global"].get_role_by_arn(caller.arn).id
            except Exception:  # noqa: BLE001 - a role since deleted: its id is gone too
                role_id = "AROA" + hashlib.sha256(caller.arn.encode()).hexdigest()[:17].upper()
            caller_id = f"{role_id}:{caller.display.rsplit('/', 1)[-1]}"
        else:
            caller_id = "AIDA" + hashlib.sha256(caller.arn.encode()).hexdigest()[:17].upper()
        return {
            "accessKey": access_key,
            "accountId": caller.arn.split(":")[4],
            "callerId": caller_id,
            "cognitoIdentity": None,
            "principalOrgId": None,
            "userArn": caller.display,
            "userId": caller_id,
        }


def install(cloud: LocalCloud) -> None:
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    urls = FunctionUrls(cloud)
    cloud.function_urls = urls
    server = Server(cloud, urls)
    _api(cloud, urls)
    _permissions()
    original = DomainDispatcherApplication.__call__

    def __call__(self: Any, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        raw_uri = environ.get("RAW_URI") or environ.get("REQUEST_URI") or environ.get("PATH_INFO", "/")
        found = urls.target(environ.get("HTTP_HOST", ""), raw_uri.partition("?")[0])
        if found is None:
            return original(self, environ, start_response)
        try:
            status, headers, data = server.serve(found[0], found[1], environ)
        except Exception as err:  # noqa: BLE001 - Lambda's own failure: 500, recorded
            cloud.record({"kind": "function-url-error", "url": found[0].url, "error": repr(err)})
            status, headers, data = 500, [("Content-Type", "application/json")], b'{"Message":"InternalFailure"}'
        headers = [(k, v) for k, v in headers if k.lower() != "content-length"] + [("Content-Length", str(len(data)))]
        start_response(f"{status} {REASONS.get(status, 'Status')}", headers)
        return [data]

    DomainDispatcherApplication.__call__ = __call__
