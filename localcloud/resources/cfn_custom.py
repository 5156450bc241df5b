"""CloudFormation custom resources (gap 18).

18. Custom resources. moto's CloudFormation cannot finish CDK custom resources (GUIDE.md section 6) and the
   provisioner had no way to run one. CloudFormation creates a resource of type
   `AWS::CloudFormation::CustomResource` or `Custom::<Anything>` by invoking its ServiceToken's Lambda function
   with a request (RequestType Create, ServiceToken, ResponseURL, StackId, RequestId, LogicalResourceId,
   ResourceType, ResourceProperties) and waiting for the function to PUT its response (Status, Reason,
   PhysicalResourceId, StackId, RequestId, LogicalResourceId, Data) to ResponseURL, a presigned URL of an S3
   bucket of CloudFormation's; SUCCESS gives the resource its PhysicalResourceId (its Ref) and `Fn::GetAtt`
   attributes from Data, FAILED fails the stack with the Reason. Here the provisioner does the same with a
   function of the deployment: ResponseURL is a presigned PUT URL of the local bucket
   `cloudformation-custom-resource-response-<region>` on this server (127.0.0.1), the function runs
   synchronously in its worker (its own timeout), and `local up` fails with the function's Reason on FAILED, or
   when no response arrived by the time the function returned or timed out (AWS would wait an hour). Only
   Create is sent: the local cloud never updates or deletes a stack. A ServiceToken that is not a Lambda
   function of the deployment (an SNS topic, another account) fails provisioning loudly.
"""

from __future__ import annotations

import json
import uuid
from typing import Any
from urllib.parse import quote

from localcloud.intrinsics import UnsupportedError
from localcloud.resources.cfn_context import Handler, ProvisioningError, ResourceContext

RESPONSE_BUCKET = "cloudformation-custom-resource-response-{region}"
REQUIRED = ("Status", "StackId", "RequestId", "LogicalResourceId")


def custom_resource(c: ResourceContext) -> tuple[Any, dict[str, Any]]:
    props = dict(c.props)
    token = props.get("ServiceToken")
    if not isinstance(token, str) or ":lambda:" not in token or ":function:" not in token:
        raise UnsupportedError(f"{c.type_} ServiceToken {token!r} ({c.logical_id}): only Lambda functions run locally")
    name = token.split(":function:", 1)[1].split(":")[0]
    if name not in c.deployment.functions or token.split(":")[4] != c.account:
        raise UnsupportedError(f"{c.type_} ServiceToken {token} ({c.logical_id}) is not a function of this deployment")
    if c.provisioner.invoke is None:
        raise UnsupportedError(f"{c.type_} ({c.logical_id}): this provisioner cannot invoke functions")
    bucket = RESPONSE_BUCKET.format(region=c.region.replace("-", ""))
    s3 = c.client("s3")
    if bucket not in {b["Name"] for b in s3.list_buckets().get("Buckets", [])}:
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": c.region})
    stack_id = f"arn:aws:cloudformation:{c.region}:{c.account}:stack/{c.stack.name}/local"
    request_id = str(uuid.uuid4())
    key = quote(f"{stack_id}|{c.logical_id}|{request_id}", safe="")
    url = s3.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=7200)
    event = {
        "RequestType": "Create",
        "ServiceToken": token,
        "ResponseURL": url,
        "StackId": stack_id,
        "RequestId": request_id,
        "LogicalResourceId": c.logical_id,
        "ResourceType": c.type_,
        "ResourceProperties": props,
    }
    result = c.provisioner.invoke(name, event)
    where = f"custom resource {c.logical_id} ({c.type_}) of {c.stack.name}"
    try:
        response = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    except s3.exceptions.NoSuchKey:
        detail = f": the function failed: {result.payload}" if result.errored else ""
        raise ProvisioningError(f"{where}: {name} sent no response to the ResponseURL{detail}") from None
    except ValueError as err:
        raise ProvisioningError(f"{where}: the response of {name} is not JSON: {err}") from None
    missing = [k for k in REQUIRED if k not in response]
    if missing:
        raise ProvisioningError(f"{where}: the response of {name} lacks {', '.join(missing)}")
    for field, expected in (("StackId", stack_id), ("RequestId", request_id), ("LogicalResourceId", c.logical_id)):
        if response[field] != expected:
            raise ProvisioningError(f"{where}: the response's {field} is {response[field]!r}, expected {expected!r}")
    if response["Status"] == "FAILED":
        raise ProvisioningError(f"{where} failed: {response.get('Reason', '(no Reason given)')}")
    if response["Status"] != "SUCCESS":
        raise ProvisioningError(f"{where}: Status {response['Status']!r} is neither SUCCESS nor FAILED")
    physical = response.get("PhysicalResourceId")
    if not physical:
        raise ProvisioningError(f"{where}: the SUCCESS response of {name} has no PhysicalResourceId")
    data = response.get("Data") or {}
    if not isinstance(data, dict):
        raise ProvisioningError(f"{where}: the response's Data is not an object")
    c.provisioner.deployment.custom_resources[f"{c.stack.name}/{c.logical_id}"] = {"id": physical, "data": data}
    return physical, dict(data)


CUSTOM = "AWS::CloudFormation::CustomResource"
HANDLERS: dict[str, Handler] = {CUSTOM: custom_resource}


def handler_for(type_: str) -> Handler | None:
    """The custom-resource handler for `AWS::CloudFormation::CustomResource` and every `Custom::<Name>`."""
    return custom_resource if type_ == CUSTOM or type_.startswith("Custom::") else None
