"""Lambda: execution (gap 1) and versions, aliases and routing (gap 10).

1. Lambda execution. moto runs handlers in Docker, and answers an Invoke whose payload is not JSON with a 500.
   Here `LambdaFunction.invoke` / `_invoke_lambda` run the real handler from the code the version was deployed
   with (runtime.py, gap 21); `InvocationType=Event` is asynchronous, as in AWS; a payload that is not JSON is
   refused before anything runs, as AWS refuses it: InvalidRequestContentException (400), "Could not parse
   request body into json: ...".
10. Lambda versions and aliases. moto stores an alias's RoutingConfig but never applies it: an alias always
   runs its FunctionVersion. Its Invoke API reads the qualifier from a lowercase `qualifier` parameter, so
   `Qualifier=` is ignored (and a `qualifier` key of the payload is taken instead); it returns no
   ExecutedVersion; it accepts routing configurations AWS refuses; it publishes a new version without a change
   once the first publish followed an update. Here every invocation of an alias (`fn:alias`, the alias ARN or
   `Qualifier=alias`, by Invoke and by EventBridge and S3 targets) draws once: below the additional version's
   weight it runs that version, otherwise the alias's FunctionVersion. Set MLVAULT_LOCAL_ROUTING_SEED in the
   local cloud's environment to make the draws reproducible. `Qualifier=` is the same as `fn:qualifier` (both,
   differing, are refused as AWS does); each version runs with the environment snapshotted when it was
   published, as its own workers (runtime.py) with AWS_LAMBDA_FUNCTION_VERSION set; the response carries
   `X-Amz-Executed-Version` (`ExecutedVersion` in boto3; `$LATEST` unqualified). CreateAlias/UpdateAlias
   refuse what AWS refuses: more than one additional version, weights outside [0, 1], a non-numeric,
   missing or primary version as the additional one, $LATEST as the primary of a weighted alias, versions of
   different execution roles. Each version also keeps the code it was published with (gap 21).

`invoke_target_async` is how other services (EventBridge targets, S3 notifications) invoke a function
asynchronously, routed by an alias's weights like an Invoke.
"""

from __future__ import annotations

import base64
import copy
import json
import os
import random
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from localcloud.server import LocalCloud

_state = threading.local()  # invoked_arn: the ARN the caller invoked, while moto runs the function object
ROUTING_SEED = "MLVAULT_LOCAL_ROUTING_SEED"
_routing = random.Random()  # noqa: S311 - splits traffic between versions; nothing secret depends on it


def install(cloud: LocalCloud) -> None:
    _execution(cloud)
    _versions()


# --- 1. Lambda execution --------------------------------------------------------------------------------


def _execution(cloud: LocalCloud) -> None:
    from moto.awslambda.models import LambdaFunction

    def invoke(self: Any, body: str, request_headers: Any, response_headers: Any) -> str | bytes:
        from moto.awslambda.exceptions import LambdaClientError

        try:
            event = json.loads(body) if body else {}
        except ValueError as err:
            raise LambdaClientError(
                "InvalidRequestContentException",
                f"Could not parse request body into json: Could not parse payload into json: {err}",
            ) from None
        environment = dict(self.environment_vars or {})
        version = str(self.version)  # "$LATEST" or the published version this object is (gap 10)
        invoked_arn = getattr(_state, "invoked_arn", None) or self.function_arn
        invocation_type = request_headers.get("x-amz-invocation-type", "RequestResponse")
        if invocation_type == "DryRun":
            return b""
        if invocation_type == "Event":
            cloud.runtime.invoke_async(
                self.function_name,
                event,
                environment,
                source="lambda:Invoke(Event)",
                version=version,
                invoked_arn=invoked_arn,
            )
            return b""
        result = cloud.runtime.invoke(
            self.function_name, event, environment, source="lambda:Invoke", version=version, invoked_arn=invoked_arn
        )
        response_headers["x-amz-executed-version"] = version
        if result.errored:
            response_headers["x-amz-function-error"] = "Unhandled"
        response_headers["x-amz-log-result"] = base64.b64encode(result.logs[-4096:].encode()).decode()
        return result.payload.encode()

    def _invoke_lambda(self: Any, event: Any = None) -> tuple[str, bool, str]:
        payload = json.loads(event) if isinstance(event, str) else (event or {})
        result = cloud.runtime.invoke(
            self.function_name,
            payload,
            dict(self.environment_vars or {}),
            source="moto",
            version=str(self.version),
            invoked_arn=self.function_arn,
        )
        return result.payload, result.errored, result.logs

    LambdaFunction.invoke = invoke
    LambdaFunction._invoke_lambda = _invoke_lambda


def invoke_target_async(cloud: LocalCloud, arn: str, event: Any, source: str) -> None:
    """An asynchronous invocation by a service (EventBridge, S3) of a function ARN, qualified or not: routed
    by the alias's weights like an Invoke (gap 10)."""
    from moto.awslambda.exceptions import LambdaClientError
    from moto.awslambda.models import lambda_backends

    try:
        fn, invoked_arn = route(lambda_backends[cloud.account][arn.split(":")[3]], arn, None)
    except LambdaClientError:  # an unknown function: the runtime reports it as AWS's delivery would fail
        cloud.runtime.invoke_async(arn.split(":")[6], event, source=source)
        return
    cloud.runtime.invoke_async(
        fn.function_name,
        event,
        dict(fn.environment_vars or {}),
        source=source,
        version=str(fn.version),
        invoked_arn=invoked_arn,
    )


# --- 10. Lambda versions and aliases --------------------------------------------------------------------


def _versions() -> None:
    from moto.awslambda.models import LambdaBackend, LambdaStorage
    from moto.awslambda.responses import LambdaResponse

    _routing.seed(os.environ.get(ROUTING_SEED))  # unset: seeded from the OS, as random.Random() is
    original_response_invoke = LambdaResponse.invoke
    original_publish = LambdaStorage.publish_version
    original_put_alias = LambdaStorage.put_alias
    original_update_alias = LambdaStorage.update_alias

    def response_invoke(self: Any) -> Any:
        # moto reads a lowercase `qualifier` (from the query string, else from the payload): give it Qualifier=
        self.querystring["qualifier"] = self.querystring.get("Qualifier") or [None]
        return original_response_invoke(self)

    def backend_invoke(
        self: Any, function_name: str, qualifier: str | None, body: Any, headers: Any, response_headers: Any
    ) -> str | bytes:
        fn, invoked_arn = route(self, function_name, qualifier)
        _state.invoked_arn = invoked_arn
        try:
            payload = fn.invoke(body, headers, response_headers)
        finally:
            _state.invoked_arn = None
        response_headers["Content-Length"] = str(len(payload))
        return payload

    def publish_version(self: Any, name_or_arn: str, description: str = "") -> Any:
        version = original_publish(self, name_or_arn, description)
        if version is not None:
            # a version is immutable: its configuration must not share mutable state with $LATEST
            version.environment_vars = copy.deepcopy(version.environment_vars)
            latest = self._functions[version.function_name]["latest"]
            if latest is not None:
                latest.code_or_config_updated = False  # moto keeps it set after the first publish
        return version

    def put_alias(
        self: Any, name: str, function_name: str, function_version: str, description: str, routing_config: Any
    ) -> Any:
        _check_routing(self, function_name, function_version, routing_config)
        return original_put_alias(self, name, function_name, function_version, description, routing_config)

    def update_alias(
        self: Any, name: str, function_name: str, function_version: str, description: str, routing_config: Any
    ) -> Any:
        alias = self.get_alias(name, _split_function(function_name)[0])
        _check_routing(
            self,
            function_name,
            function_version if function_version is not None else alias.function_version,
            routing_config if routing_config is not None else alias.routing_config,
        )
        return original_update_alias(self, name, function_name, function_version, description, routing_config)

    LambdaResponse.invoke = response_invoke
    LambdaBackend.invoke = backend_invoke
    LambdaStorage.publish_version = publish_version
    LambdaStorage.put_alias = put_alias
    LambdaStorage.update_alias = update_alias


def route(backend: Any, name_or_arn: str, qualifier: str | None) -> tuple[Any, str]:
    """(moto's function object that runs, the ARN the caller invoked) for an invocation of `name_or_arn`
    (a name, partial or full ARN, each optionally qualified) with an optional Qualifier."""
    from moto.awslambda.exceptions import InvalidParameterValueException
    from moto.awslambda.utils import make_function_arn

    storage = backend._lambdas
    name, in_name = _split_function(name_or_arn)
    if in_name and qualifier and in_name != qualifier:
        raise InvalidParameterValueException(
            "The derived qualifier from the function name does not match the specified qualifier."
        )
    qualifier = in_name or qualifier
    fn = storage.get_function_by_name_with_qualifier(name, qualifier)  # ResourceNotFound as moto raises it
    invoked_arn = make_function_arn(backend.region_name, backend.account_id, name)
    if qualifier:
        invoked_arn += f":{qualifier}"
    if qualifier and qualifier.upper() != "$LATEST" and not qualifier.isdigit():
        alias = storage.get_alias(qualifier, name)
        draw = _routing.random()
        for version, weight in _weights(alias.routing_config).items():
            if draw < float(weight):
                fn = storage._get_version(name, version) or fn
                break
            draw -= float(weight)
    return fn, invoked_arn


def _split_function(name_or_arn: str) -> tuple[str, str | None]:
    """(name, qualifier or None) of `fn`, `fn:q`, `123456789012:function:fn[:q]` or a full function ARN."""
    rest = name_or_arn.split(":function:", 1)[1] if ":function:" in name_or_arn else name_or_arn
    name, _, qualifier = rest.partition(":")
    return name, qualifier or None


def _weights(routing_config: Any) -> dict[str, float]:
    return dict((routing_config or {}).get("AdditionalVersionWeights") or {})


def _check_routing(storage: Any, function_name: str, primary: str, routing_config: Any) -> None:
    """What Lambda refuses of an alias's routing configuration (the alias as it would be after the call)."""
    from moto.awslambda.exceptions import InvalidParameterValueException, LambdaClientError, UnknownFunctionException
    from moto.awslambda.utils import make_function_arn

    weights = _weights(routing_config)
    if not weights:
        return
    name = _split_function(function_name)[0]
    if len(weights) > 1:
        raise InvalidParameterValueException("Number of items in AdditionalVersionWeights cannot be greater than 1")
    ((version, weight),) = weights.items()
    if not isinstance(weight, int | float) or not 0.0 <= weight <= 1.0:
        raise LambdaClientError(
            "ValidationException",
            f"1 validation error detected: Value '{{{version}={weight}}}' at 'routingConfig.additionalVersionWeights'"
            " failed to satisfy constraint: Map value must be between 0.0 and 1.0",
        )
    if not str(version).isdigit():
        raise LambdaClientError(
            "ValidationException",
            f"1 validation error detected: Value '{{{version}={weight}}}' at 'routingConfig.additionalVersionWeights'"
            " failed to satisfy constraint: Map keys must be published version numbers ([0-9]+)",
        )
    if str(primary).upper() == "$LATEST":
        raise InvalidParameterValueException("$LATEST is not supported for an alias pointing to more than 1 version")
    if str(version) == str(primary):
        raise InvalidParameterValueException(
            f"Invalid function version {primary}. Function version {primary} is already included in routing "
            "configuration."
        )
    additional = storage._get_version(name, str(version)) if name in storage._functions else None
    if additional is None:
        raise UnknownFunctionException(f"{make_function_arn(storage.region_name, storage.account_id, name)}:{version}")
    main = storage._get_version(name, str(primary))
    if main is not None and main.role != additional.role:
        raise InvalidParameterValueException(
            f"Versions {primary} and {version} of an alias must have the same execution role."
        )
