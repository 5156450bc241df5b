"""Messaging resources: SQS queues and queue policies, SNS topics, topic policies and subscriptions."""

from __future__ import annotations

import json
from typing import Any

from localcloud.resources.cfn_context import Handler, ResourceContext, tag_map, tags

_QUEUE_ATTRIBUTES = (
    "KmsMasterKeyId",
    "MessageRetentionPeriod",
    "VisibilityTimeout",
    "DelaySeconds",
    "MaximumMessageSize",
    "ReceiveMessageWaitTimeSeconds",
    "KmsDataKeyReusePeriodSeconds",
    "SqsManagedSseEnabled",
    "FifoQueue",
    "ContentBasedDeduplication",
)


def queue(c: ResourceContext) -> tuple[Any, dict[str, Any]]:
    p = c.take("QueueName", "RedrivePolicy", "Tags", *_QUEUE_ATTRIBUTES)
    sqs = c.client("sqs")
    name = p.get("QueueName") or c.unique_name(80)
    attributes = {k: str(p[k]).lower() if isinstance(p[k], bool) else str(p[k]) for k in _QUEUE_ATTRIBUTES if k in p}
    if "RedrivePolicy" in p:
        attributes["RedrivePolicy"] = json.dumps(p["RedrivePolicy"])
    url = sqs.create_queue(QueueName=name, Attributes=attributes, tags=tag_map(p))["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return url, {"Arn": arn, "QueueName": name, "QueueUrl": url}


def queue_policy(c: ResourceContext) -> tuple[Any, dict[str, Any]]:
    p = c.take("PolicyDocument", "Queues")
    sqs = c.client("sqs")
    for url in p["Queues"]:
        sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": json.dumps(p["PolicyDocument"])})
    return f"{c.logical_id}-policy", {}


def topic(c: ResourceContext) -> tuple[Any, dict[str, Any]]:
    p = c.take("TopicName", "KmsMasterKeyId", "DisplayName", "Tags")
    attributes = {k: p[k] for k in ("KmsMasterKeyId", "DisplayName") if k in p}
    name = p.get("TopicName") or c.unique_name(256)
    arn = c.client("sns").create_topic(Name=name, Attributes=attributes, Tags=tags(p))["TopicArn"]
    return arn, {"TopicArn": arn, "TopicName": name}


def topic_policy(c: ResourceContext) -> tuple[Any, dict[str, Any]]:
    p = c.take("PolicyDocument", "Topics")
    for arn in p["Topics"]:
        c.client("sns").set_topic_attributes(
            TopicArn=arn, AttributeName="Policy", AttributeValue=json.dumps(p["PolicyDocument"])
        )
    return f"{c.logical_id}-policy", {}


def subscription(c: ResourceContext) -> tuple[Any, dict[str, Any]]:
    p = c.take("TopicArn", "Protocol", "Endpoint", "RawMessageDelivery", "FilterPolicy")
    attributes = {}
    if "RawMessageDelivery" in p:
        attributes["RawMessageDelivery"] = str(p["RawMessageDelivery"]).lower()
    if "FilterPolicy" in p:
        attributes["FilterPolicy"] = json.dumps(p["FilterPolicy"])
    arn = c.client("sns").subscribe(
        TopicArn=p["TopicArn"],
        Protocol=p["Protocol"],
        Endpoint=p["Endpoint"],
        Attributes=attributes,
        ReturnSubscriptionArn=True,
    )["SubscriptionArn"]
    return arn, {}


HANDLERS: dict[str, Handler] = {
    "AWS::SQS::Queue": queue,
    "AWS::SQS::QueuePolicy": queue_policy,
    "AWS::SNS::Topic": topic,
    "AWS::SNS::TopicPolicy": topic_policy,
    "AWS::SNS::Subscription": subscription,
}
