"""Every request to the local cloud named as IAM names it: the actions it needs, on which resource ARNs, with which
service condition keys (gap 14; S3 requests are mapped by services/s3_requests.py).

`needs(service, operation, params, where)` takes the request's parameters as botocore's model parses them (authz.py
parses every request with moto's protocol parsers) and returns one `Need` per (action, resource) AWS authorizes. The
action names and resource ARN formats follow the Service Authorization Reference of each service: Invoke is
`lambda:InvokeFunction` on the (qualified) function ARN, SQS batch operations are authorized as their single actions
(`sqs:SendMessage` for SendMessageBatch), DynamoDB batch and transaction requests on each table they name, KMS
requests on the key the KeyId, alias or ciphertext designates, passing a role to a service (Lambda, Step Functions,
EventBridge targets, SageMaker training jobs) is `iam:PassRole` with `iam:PassedToService`; CreateTrainingJob with
tags is `sagemaker:AddTags` too, with the `sagemaker:` condition keys of the job (NetworkIsolation, InstanceTypes,
MaxRuntimeInSeconds, OutputKmsKey, VolumeKmsKey); function URL configurations and AddPermission carry
`lambda:FunctionUrlAuthType`. An operation of these services not listed here is authorized as `<prefix>:<Operation>`
on `*` (its name is its action for every API the app uses; a role granted it on a narrower resource is then refused:
the local cloud fails closed). sts:GetCallerIdentity needs no permission, as in AWS.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

PREFIX = {"stepfunctions": "states", "awslambda": "lambda", "events": "events"}
NO_AUTHORIZATION = {("sts", "GetCallerIdentity")}


@dataclass(frozen=True)
class Need:
    action: str
    resource: str
    context: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Where:
    """The account and region of the request, and look-ups into the backends for resources named indirectly."""

    account: str
    region: str
    kms_key_arn: Callable[[str], str | None] = lambda key_id: None  # key id, key ARN, alias or alias ARN
    kms_key_of_ciphertext: Callable[[bytes], str | None] = lambda blob: None
    machine_of_token: Callable[[str], str | None] = lambda token: None  # Step Functions task token


def needs(service: str, operation: str, params: Mapping[str, Any], where: Where) -> list[Need]:
    if (service, operation) in NO_AUTHORIZATION:
        return []
    mapper = _MAPPERS.get(service)
    prefix = PREFIX.get(service, service)
    if mapper is not None:
        mapped = mapper(operation, params, where)
        if mapped is not None:
            return mapped
    return [Need(f"{prefix}:{operation}", "*")]


def _arn(where: Where, service: str, resource: str, *, region: bool = True) -> str:
    return f"arn:aws:{service}:{where.region if region else ''}:{where.account}:{resource}"


# --- DynamoDB ---------------------------------------------------------------------------------------------

_TRANSACT = {"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem", "ConditionCheck": "ConditionCheckItem"}


def _dynamodb(operation: str, params: Mapping[str, Any], where: Where) -> list[Need] | None:
    def table(name: str) -> str:
        return name if name.startswith("arn:") else _arn(where, "dynamodb", f"table/{name}")

    if operation in ("BatchGetItem", "BatchWriteItem"):
        return [Need(f"dynamodb:{operation}", table(t)) for t in params.get("RequestItems", {})]
    if operation == "TransactWriteItems":
        return [
            Need(f"dynamodb:{_TRANSACT[kind]}", table(body["TableName"]))
            for item in params.get("TransactItems", [])
            for kind, body in item.items()
        ]
    if operation == "TransactGetItems":
        return [Need("dynamodb:GetItem", table(i["Get"]["TableName"])) for i in params.get("TransactItems", [])]
    if operation in ("ListTables", "DescribeLimits", "DescribeEndpoints"):
        return [Need(f"dynamodb:{operation}", "*")]
    name = params.get("TableName") or params.get("ResourceArn")
    if not name:
        return None
    resource = table(name)
    if operation in ("Query", "Scan") and params.get("IndexName"):
        resource += f"/index/{params['IndexName']}"
    return [Need(f"dynamodb:{operation}", resource)]


# --- SQS --------------------------------------------------------------------------------------------------

_SQS_BATCH = {
    "SendMessageBatch": "SendMessage",
    "DeleteMessageBatch": "DeleteMessage",
    "ChangeMessageVisibilityBatch": "ChangeMessageVisibility",
}


def _sqs(operation: str, params: Mapping[str, Any], where: Where) -> list[Need] | None:
    if operation in ("ListQueues",):
        return [Need("sqs:ListQueues", "*")]
    if "QueueUrl" in params:
        path = urlparse(params["QueueUrl"]).path.strip("/").split("/")
        account, name = (path[-2], path[-1]) if len(path) >= 2 else (where.account, path[-1])
        resource = f"arn:aws:sqs:{where.region}:{account}:{name}"
    elif "QueueName" in params:
        resource = _arn(where, "sqs", params["QueueName"])
    else:
        return None
    return [Need(f"sqs:{_SQS_BATCH.get(operation, operation)}", resource)]


# --- SNS --------------------------------------------------------------------------------------------------


def _sns(operation: str, params: Mapping[str, Any], where: Where) -> list[Need] | None:
    action = "sns:Publish" if operation == "PublishBatch" else f"sns:{operation}"
    if "TopicArn" in params:
        return [Need(action, params["TopicArn"])]
    if operation == "CreateTopic":
        return [Need(action, _arn(where, "sns", params["Name"]))]
    if "SubscriptionArn" in params:  # authorized on the subscription's topic
        return [Need(action, params["SubscriptionArn"].rsplit(":", 1)[0])]
    if "ResourceArn" in params:
        return [Need(action, params["ResourceArn"])]
    return None


# --- KMS --------------------------------------------------------------------------------------------------


def _kms(operation: str, params: Mapping[str, Any], where: Where) -> list[Need] | None:
    if operation in ("CreateKey", "ListKeys", "ListAliases", "GenerateRandom", "ListRetirableGrants"):
        return [Need(f"kms:{operation}", "*")]
    context: dict[str, Any] = {"kms:CallerAccount": where.account}
    for name, value in (params.get("EncryptionContext") or {}).items():
        context[f"kms:EncryptionContext:{name}"] = value
    if params.get("EncryptionContext"):
        context["kms:EncryptionContextKeys"] = sorted(params["EncryptionContext"])
    for param, key in (
        ("SigningAlgorithm", "kms:SigningAlgorithm"),
        ("MessageType", "kms:MessageType"),
        ("EncryptionAlgorithm", "kms:EncryptionAlgorithm"),
    ):
        if param in params:
            context[key] = params[param]
    if operation == "CreateGrant" and params.get("Operations"):
        context["kms:GrantOperations"] = list(params["Operations"])
    if operation in ("CreateAlias", "UpdateAlias"):
        alias = _arn(where, "kms", params["AliasName"])
        key = where.kms_key_arn(params["TargetKeyId"]) or params["TargetKeyId"]
        return [Need(f"kms:{operation}", alias, context), Need(f"kms:{operation}", key, context)]
    if operation == "DeleteAlias":
        return [Need("kms:DeleteAlias", _arn(where, "kms", params["AliasName"]), context)]
    if operation == "ReEncrypt":
        source = params.get("SourceKeyId") or where.kms_key_of_ciphertext(params.get("CiphertextBlob", b""))
        needs_ = [Need("kms:ReEncryptFrom", where.kms_key_arn(source or "") or "*", context)]
        return [*needs_, Need("kms:ReEncryptTo", where.kms_key_arn(params["DestinationKeyId"]) or "*", context)]
    key_id = params.get("KeyId")
    if key_id is None and operation == "Decrypt":
        key_id = where.kms_key_of_ciphertext(params.get("CiphertextBlob", b""))
    if key_id is None:
        return None
    return [Need(f"kms:{operation}", where.kms_key_arn(key_id) or key_id, context)]


# --- Lambda -----------------------------------------------------------------------------------------------

_LAMBDA_ACTIONS = {
    "Invoke": "InvokeFunction",
    "InvokeAsync": "InvokeAsync",
    "InvokeWithResponseStream": "InvokeFunction",
}
_LAMBDA_QUALIFIED = {
    "Invoke",
    "InvokeWithResponseStream",
    "GetFunction",
    "GetFunctionConfiguration",
    "GetPolicy",
    "AddPermission",
    "RemovePermission",
    "CreateFunctionUrlConfig",
    "GetFunctionUrlConfig",
    "UpdateFunctionUrlConfig",
    "DeleteFunctionUrlConfig",
}


def _function_arn(where: Where, name: str, qualifier: str | None = None) -> str:
    rest = name.split(":function:", 1)[1] if ":function:" in name else name
    base, _, in_name = rest.partition(":")
    arn = _arn(where, "lambda", f"function:{base}")
    qualifier = in_name or qualifier
    return f"{arn}:{qualifier}" if qualifier else arn


def _lambda(operation: str, params: Mapping[str, Any], where: Where) -> list[Need] | None:
    action = f"lambda:{_LAMBDA_ACTIONS.get(operation, operation)}"
    if operation in ("ListFunctions", "ListEventSourceMappings", "ListLayers", "GetAccountSettings"):
        return [Need(action, "*")]
    if operation == "CreateEventSourceMapping":
        context = {"lambda:FunctionArn": _function_arn(where, params["FunctionName"])}
        return [Need(action, "*", context)]
    if "UUID" in params:
        return [Need(action, _arn(where, "lambda", f"event-source-mapping:{params['UUID']}"))]
    if operation == "PublishLayerVersion":
        return [Need(action, _arn(where, "lambda", f"layer:{params['LayerName']}"))]
    if "LayerName" in params and "VersionNumber" in params:
        name = params["LayerName"].split(":layer:")[-1]
        return [Need(action, _arn(where, "lambda", f"layer:{name}:{params['VersionNumber']}"))]
    if "Resource" in params:  # tags
        return [Need(action, params["Resource"])]
    if "FunctionName" not in params:
        return None
    qualifier = params.get("Qualifier") if operation in _LAMBDA_QUALIFIED else None
    function = _function_arn(where, params["FunctionName"], qualifier)
    result = [Need(action, function, _lambda_context(operation, params))]
    if params.get("Role") and operation in ("CreateFunction", "UpdateFunctionConfiguration"):
        result.append(_pass_role(params["Role"], "lambda.amazonaws.com"))
    for layer in params.get("Layers") or []:
        result.append(Need("lambda:GetLayerVersion", layer))
    if operation == "PutFunctionCodeSigningConfig":
        result.append(Need(action, params["CodeSigningConfigArn"]))
    return result


def _lambda_context(operation: str, params: Mapping[str, Any]) -> dict[str, Any]:
    context: dict[str, Any] = {}
    if params.get("Layers"):
        context["lambda:Layer"] = list(params["Layers"])
    if params.get("CodeSigningConfigArn"):
        context["lambda:CodeSigningConfigArn"] = params["CodeSigningConfigArn"]
    if operation == "AddPermission":
        context["lambda:Principal"] = params.get("Principal", "")
    url_auth = params.get("FunctionUrlAuthType") or params.get("AuthType")
    if url_auth and (operation == "AddPermission" or operation.endswith("FunctionUrlConfig")):
        context["lambda:FunctionUrlAuthType"] = url_auth
    return context


def _pass_role(role_arn: str, service: str) -> Need:
    return Need("iam:PassRole", role_arn, {"iam:PassedToService": service})


# --- EventBridge ------------------------------------------------------------------------------------------


def _bus_arn(where: Where, bus: str | None) -> str:
    if bus and bus.startswith("arn:"):
        return bus
    return _arn(where, "events", f"event-bus/{bus or 'default'}")


def _rule_arn(where: Where, name: str, bus: str | None) -> str:
    if name.startswith("arn:"):
        return name
    bus_name = (bus or "default").rsplit("/", 1)[-1]
    return _arn(where, "events", f"rule/{name}" if bus_name == "default" else f"rule/{bus_name}/{name}")


def _events(operation: str, params: Mapping[str, Any], where: Where) -> list[Need] | None:
    if operation == "PutEvents":
        return [
            Need(
                "events:PutEvents",
                _bus_arn(where, entry.get("EventBusName")),
                {"events:source": entry.get("Source", ""), "events:detail-type": entry.get("DetailType", "")},
            )
            for entry in params.get("Entries", [])
        ]
    if operation in ("ListRules", "ListEventBuses", "TestEventPattern", "ListRuleNamesByTarget"):
        return [Need(f"events:{operation}", "*")]
    if "Rule" in params or ("Name" in params and operation.endswith("Rule")):
        rule = _rule_arn(where, params.get("Rule") or params["Name"], params.get("EventBusName"))
        result = [Need(f"events:{operation}", rule)]
        for target in params.get("Targets", []) if operation == "PutTargets" else []:
            if target.get("RoleArn"):
                result.append(_pass_role(target["RoleArn"], "events.amazonaws.com"))
        return result
    if "Name" in params and "EventBus" in operation:
        return [Need(f"events:{operation}", _bus_arn(where, params["Name"]))]
    if "ResourceARN" in params:
        return [Need(f"events:{operation}", params["ResourceARN"])]
    return None


# --- Step Functions ---------------------------------------------------------------------------------------


def _states(operation: str, params: Mapping[str, Any], where: Where) -> list[Need] | None:
    action = f"states:{operation}"
    if operation in ("ListStateMachines", "ListActivities", "ValidateStateMachineDefinition"):
        return [Need(action, "*")]
    if operation in ("SendTaskSuccess", "SendTaskFailure", "SendTaskHeartbeat"):
        return [Need(action, where.machine_of_token(params.get("taskToken", "")) or "*")]
    if operation == "CreateStateMachine":
        machine = _arn(where, "states", f"stateMachine:{params['name']}")
        return [Need(action, machine), _pass_role(params["roleArn"], "states.amazonaws.com")]
    if "executionArn" in params:
        return [Need(action, params["executionArn"])]
    if "stateMachineArn" in params:
        result = [Need(action, params["stateMachineArn"])]
        if operation == "UpdateStateMachine" and params.get("roleArn"):
            result.append(_pass_role(params["roleArn"], "states.amazonaws.com"))
        return result
    if "resourceArn" in params:
        return [Need(action, params["resourceArn"])]
    return None


# --- CloudWatch and CloudWatch Logs -----------------------------------------------------------------------


def _cloudwatch(operation: str, params: Mapping[str, Any], where: Where) -> list[Need] | None:
    action = f"cloudwatch:{operation}"
    if operation == "PutMetricData":
        return [Need(action, "*", {"cloudwatch:namespace": params.get("Namespace", "")})]
    alarms = params.get("AlarmNames") or ([params["AlarmName"]] if "AlarmName" in params else None)
    if alarms:
        return [Need(action, _arn(where, "cloudwatch", f"alarm:{name}")) for name in alarms]
    if operation == "DescribeAlarms":
        return [Need(action, _arn(where, "cloudwatch", "alarm:*"))]
    dashboards = params.get("DashboardNames") or ([params["DashboardName"]] if "DashboardName" in params else None)
    if dashboards:
        return [Need(action, f"arn:aws:cloudwatch::{where.account}:dashboard/{name}") for name in dashboards]
    if "ResourceARN" in params:
        return [Need(action, params["ResourceARN"])]
    return None


def _logs(operation: str, params: Mapping[str, Any], where: Where) -> list[Need] | None:
    action = f"logs:{operation}"
    group = params.get("logGroupName")
    if group and params.get("logStreamName"):
        return [Need(action, _arn(where, "logs", f"log-group:{group}:log-stream:{params['logStreamName']}"))]
    if group:
        return [Need(action, _arn(where, "logs", f"log-group:{group}"))]
    if operation == "DescribeLogGroups":
        return [Need(action, _arn(where, "logs", "log-group:*"))]
    if "resourceArn" in params:
        return [Need(action, params["resourceArn"])]
    return None


# --- SSM, STS, Signer, IAM --------------------------------------------------------------------------------


def _parameter_arn(where: Where, name: str) -> str:
    return name if name.startswith("arn:") else _arn(where, "ssm", f"parameter/{name.lstrip('/')}")


def _ssm(operation: str, params: Mapping[str, Any], where: Where) -> list[Need] | None:
    action = f"ssm:{operation}"
    if "Names" in params:
        return [Need(action, _parameter_arn(where, n)) for n in params["Names"]]
    if "Name" in params:
        return [Need(action, _parameter_arn(where, params["Name"]))]
    if "Path" in params:
        return [Need(action, _parameter_arn(where, params["Path"]))]
    if operation == "DescribeParameters":
        return [Need(action, "*")]
    if "ResourceId" in params and params.get("ResourceType") == "Parameter":
        return [Need(action, _parameter_arn(where, params["ResourceId"]))]
    return None


def _sts(operation: str, params: Mapping[str, Any], where: Where) -> list[Need] | None:
    if operation in ("AssumeRole", "AssumeRoleWithWebIdentity", "AssumeRoleWithSAML"):
        context = {"sts:RoleSessionName": params.get("RoleSessionName", "")}
        if params.get("ExternalId"):
            context["sts:ExternalId"] = params["ExternalId"]
        return [Need(f"sts:{operation}", params["RoleArn"], context)]
    return None


def _signer(operation: str, params: Mapping[str, Any], where: Where) -> list[Need] | None:
    action = f"signer:{operation}"

    def profile(name: str) -> str:
        return _arn(where, "signer", f"/signing-profiles/{name}")

    if operation == "StartSigningJob":
        return [Need(action, profile(params["profileName"]))]
    if "jobId" in params:
        return [Need(action, _arn(where, "signer", f"/signing-jobs/{params['jobId']}"))]
    if "profileName" in params:
        return [Need(action, profile(params["profileName"]))]
    if operation in ("ListSigningJobs", "ListSigningProfiles", "ListSigningPlatforms", "GetSigningPlatform"):
        return [Need(action, "*")]
    if "resourceArn" in params:
        return [Need(action, params["resourceArn"])]
    return None


def _iam(operation: str, params: Mapping[str, Any], where: Where) -> list[Need] | None:
    action = f"iam:{operation}"
    if "RoleName" in params:
        path = params.get("Path", "/") if operation == "CreateRole" else "/"
        return [Need(action, f"arn:aws:iam::{where.account}:role{path}{params['RoleName']}")]
    if "UserName" in params:
        return [Need(action, f"arn:aws:iam::{where.account}:user/{params['UserName']}")]
    if "PolicyArn" in params:
        return [Need(action, params["PolicyArn"])]
    return None


# --- SageMaker --------------------------------------------------------------------------------------------


def _tag_context(tags: Any) -> dict[str, Any]:
    context: dict[str, Any] = {f"aws:RequestTag/{t['Key']}": t.get("Value", "") for t in tags or []}
    if tags:
        context["aws:TagKeys"] = [t["Key"] for t in tags]
    return context


def _sagemaker(operation: str, params: Mapping[str, Any], where: Where) -> list[Need] | None:
    action = f"sagemaker:{operation}"
    if operation.startswith("List") and "ResourceArn" not in params:
        return [Need(action, "*")]
    if "ResourceArn" in params:  # AddTags, DeleteTags, ListTags
        return [Need(action, params["ResourceArn"], _tag_context(params.get("Tags")))]
    if "TrainingJobName" not in params:
        return None
    job = _arn(where, "sagemaker", f"training-job/{str(params['TrainingJobName']).lower()}")
    if operation != "CreateTrainingJob":
        return [Need(action, job)]
    resources = params.get("ResourceConfig") or {}
    context = {
        **_tag_context(params.get("Tags")),
        "sagemaker:NetworkIsolation": str(bool(params.get("EnableNetworkIsolation", False))).lower(),
        "sagemaker:InterContainerTrafficEncryption": str(
            bool(params.get("EnableInterContainerTrafficEncryption", False))
        ).lower(),
        "sagemaker:MaxRuntimeInSeconds": str((params.get("StoppingCondition") or {}).get("MaxRuntimeInSeconds", 86400)),
    }
    if resources.get("InstanceType"):
        context["sagemaker:InstanceTypes"] = [resources["InstanceType"]]
    if resources.get("VolumeKmsKeyId"):
        context["sagemaker:VolumeKmsKey"] = resources["VolumeKmsKeyId"]
    if (params.get("OutputDataConfig") or {}).get("KmsKeyId"):
        context["sagemaker:OutputKmsKey"] = params["OutputDataConfig"]["KmsKeyId"]
    result = [Need(action, job, context)]
    if params.get("Tags"):  # tags on create are authorized as sagemaker:AddTags too
        result.append(Need("sagemaker:AddTags", job, _tag_context(params["Tags"])))
    if params.get("RoleArn"):
        result.append(_pass_role(params["RoleArn"], "sagemaker.amazonaws.com"))
    return result


_MAPPERS: dict[str, Callable[[str, Mapping[str, Any], Where], list[Need] | None]] = {
    "dynamodb": _dynamodb,
    "sqs": _sqs,
    "sns": _sns,
    "kms": _kms,
    "lambda": _lambda,
    "events": _events,
    "stepfunctions": _states,
    "cloudwatch": _cloudwatch,
    "logs": _logs,
    "ssm": _ssm,
    "sts": _sts,
    "signer": _signer,
    "iam": _iam,
    "sagemaker": _sagemaker,
}
