"""Requests named as IAM names them (localcloud/iam_actions.py and localcloud/services/s3_requests.py, gaps 3 and
14): the action, the resource ARN and the condition keys AWS authorizes each request with."""

from __future__ import annotations

import pytest

from localcloud.iam_actions import Where, needs
from localcloud.services.s3_requests import S3Request, UnmappedRequest, s3_needs

WHERE = Where(
    account="123456789012",
    region="eu-west-1",
    kms_key_arn=lambda key: "arn:aws:kms:eu-west-1:123456789012:key/k1" if key in ("k1", "alias/data") else None,
    kms_key_of_ciphertext=lambda blob: "k1",
    machine_of_token=lambda token: "arn:aws:states:eu-west-1:123456789012:stateMachine:m" if token == "t" else None,
)
FN = "arn:aws:lambda:eu-west-1:123456789012:function:serve"


def named(service, operation, **params):
    return [(n.action, n.resource) for n in needs(service, operation, params, WHERE)]


@pytest.mark.parametrize(
    ("params", "resource"),
    [
        ({"FunctionName": "serve"}, FN),
        ({"FunctionName": "serve:live"}, f"{FN}:live"),
        ({"FunctionName": "serve", "Qualifier": "3"}, f"{FN}:3"),
        ({"FunctionName": f"{FN}:live"}, f"{FN}:live"),
    ],
)
def test_invoke_is_invoke_function_on_the_qualified_arn(params, resource):
    assert named("lambda", "Invoke", **params) == [("lambda:InvokeFunction", resource)]


def test_changing_a_functions_role_needs_pass_role_for_lambda():
    role = "arn:aws:iam::123456789012:role/other"
    out = needs("lambda", "UpdateFunctionConfiguration", {"FunctionName": "serve", "Role": role}, WHERE)
    assert [(n.action, n.resource) for n in out] == [("lambda:UpdateFunctionConfiguration", FN), ("iam:PassRole", role)]
    assert out[1].context == {"iam:PassedToService": "lambda.amazonaws.com"}
    assert named("lambda", "UpdateAlias", FunctionName="serve", Name="live") == [("lambda:UpdateAlias", FN)]


def test_batch_and_transaction_requests_are_authorized_per_table_and_item():
    table = "arn:aws:dynamodb:eu-west-1:123456789012:table/{}"
    assert named("dynamodb", "BatchGetItem", RequestItems={"a": {}, "b": {}}) == [
        ("dynamodb:BatchGetItem", table.format("a")),
        ("dynamodb:BatchGetItem", table.format("b")),
    ]
    items = [{"Put": {"TableName": "a"}}, {"ConditionCheck": {"TableName": "b"}}, {"Update": {"TableName": "a"}}]
    assert named("dynamodb", "TransactWriteItems", TransactItems=items) == [
        ("dynamodb:PutItem", table.format("a")),
        ("dynamodb:ConditionCheckItem", table.format("b")),
        ("dynamodb:UpdateItem", table.format("a")),
    ]
    assert named("dynamodb", "Query", TableName="a", IndexName="by-status") == [
        ("dynamodb:Query", table.format("a") + "/index/by-status")
    ]


def test_sqs_batches_are_their_single_actions_on_the_queue_of_the_url():
    url = "http://127.0.0.1:5000/123456789012/ingest"
    queue = "arn:aws:sqs:eu-west-1:123456789012:ingest"
    assert named("sqs", "SendMessageBatch", QueueUrl=url, Entries=[]) == [("sqs:SendMessage", queue)]
    assert named("sqs", "DeleteMessageBatch", QueueUrl=url, Entries=[]) == [("sqs:DeleteMessage", queue)]
    assert named("sqs", "GetQueueUrl", QueueName="ingest") == [("sqs:GetQueueUrl", queue)]
    assert named("sqs", "ListQueues") == [("sqs:ListQueues", "*")]


def test_kms_requests_are_authorized_on_the_key_an_alias_or_ciphertext_names():
    key = "arn:aws:kms:eu-west-1:123456789012:key/k1"
    assert named("kms", "Sign", KeyId="alias/data", Message=b"m", SigningAlgorithm="ECDSA_SHA_256") == [
        ("kms:Sign", key)
    ]
    assert named("kms", "Decrypt", CiphertextBlob=b"blob") == [("kms:Decrypt", key)]
    (sign,) = needs("kms", "Sign", {"KeyId": "k1", "SigningAlgorithm": "ECDSA_SHA_256", "MessageType": "DIGEST"}, WHERE)
    assert sign.context["kms:SigningAlgorithm"] == "ECDSA_SHA_256"
    assert sign.context["kms:MessageType"] == "DIGEST"
    assert named("kms", "CreateKey") == [("kms:CreateKey", "*")]


def test_put_events_is_authorized_per_entry_on_its_bus_with_source_and_detail_type():
    out = needs(
        "events",
        "PutEvents",
        {
            "Entries": [
                {"Source": "mlvault.ingest", "DetailType": "Upload Accepted"},
                {"Source": "x", "EventBusName": "b"},
            ]
        },
        WHERE,
    )
    assert [(n.resource, n.context["events:source"]) for n in out] == [
        ("arn:aws:events:eu-west-1:123456789012:event-bus/default", "mlvault.ingest"),
        ("arn:aws:events:eu-west-1:123456789012:event-bus/b", "x"),
    ]
    assert out[0].context["events:detail-type"] == "Upload Accepted"


def test_step_functions_cloudwatch_ssm_sts_and_signer_resources():
    machine = "arn:aws:states:eu-west-1:123456789012:stateMachine:m"
    assert named("stepfunctions", "SendTaskSuccess", taskToken="t", output="{}") == [
        ("states:SendTaskSuccess", machine)
    ]
    assert named("stepfunctions", "StartExecution", stateMachineArn=machine) == [("states:StartExecution", machine)]
    assert named("cloudwatch", "DescribeAlarms", AlarmNames=["a"]) == [
        ("cloudwatch:DescribeAlarms", "arn:aws:cloudwatch:eu-west-1:123456789012:alarm:a")
    ]
    (metric,) = needs("cloudwatch", "PutMetricData", {"Namespace": "mlvault"}, WHERE)
    assert (metric.resource, metric.context) == ("*", {"cloudwatch:namespace": "mlvault"})
    assert named("ssm", "GetParametersByPath", Path="/mlvault/dev") == [
        ("ssm:GetParametersByPath", "arn:aws:ssm:eu-west-1:123456789012:parameter/mlvault/dev")
    ]
    role = "arn:aws:iam::123456789012:role/break-glass"
    assert named("sts", "AssumeRole", RoleArn=role, RoleSessionName="s") == [("sts:AssumeRole", role)]
    assert named("sts", "GetCallerIdentity") == []  # needs no permission
    assert named("signer", "StartSigningJob", profileName="p") == [
        ("signer:StartSigningJob", "arn:aws:signer:eu-west-1:123456789012:/signing-profiles/p")
    ]
    assert named("signer", "DescribeSigningJob", jobId="j") == [
        ("signer:DescribeSigningJob", "arn:aws:signer:eu-west-1:123456789012:/signing-jobs/j")
    ]


def test_an_operation_not_mapped_is_its_own_name_on_everything():
    assert named("dynamodb", "DescribeLimits") == [("dynamodb:DescribeLimits", "*")]
    assert named("xray", "PutTraceSegments") == [("xray:PutTraceSegments", "*")]


# --- S3 -----------------------------------------------------------------------------------------------------


def s3(method, path, headers=None, body=b""):
    bucket, _, key = path.lstrip("/").partition("?")[0].partition("/")
    url = f"http://127.0.0.1:5000{path}"
    return [
        (n.action, n.resource) for n in s3_needs(S3Request.of(method, url, bucket, key or None, headers or {}, body))
    ]


OBJ = "arn:aws:s3:::lake/datasets/a.csv"


@pytest.mark.parametrize(
    ("method", "path", "headers", "actions"),
    [
        ("GET", "/lake/datasets/a.csv", {}, ["s3:GetObject"]),
        ("GET", "/lake/datasets/a.csv?versionId=v1", {}, ["s3:GetObjectVersion"]),
        ("HEAD", "/lake/datasets/a.csv?versionId=v1", {}, ["s3:GetObjectVersion"]),
        ("DELETE", "/lake/datasets/a.csv?versionId=v1", {}, ["s3:DeleteObjectVersion"]),
        (
            "DELETE",
            "/lake/datasets/a.csv?versionId=v1",
            {"x-amz-bypass-governance-retention": "true"},
            ["s3:DeleteObjectVersion", "s3:BypassGovernanceRetention"],
        ),
        ("PUT", "/lake/datasets/a.csv?retention&versionId=v1", {}, ["s3:PutObjectRetention"]),
        (
            "PUT",
            "/lake/datasets/a.csv?retention&versionId=v1",
            {"x-amz-bypass-governance-retention": "true"},
            ["s3:PutObjectRetention", "s3:BypassGovernanceRetention"],
        ),
        ("PUT", "/lake/datasets/a.csv?legal-hold&versionId=v1", {}, ["s3:PutObjectLegalHold"]),
        ("GET", "/lake/datasets/a.csv?retention", {}, ["s3:GetObjectRetention"]),
        ("PUT", "/lake/datasets/a.csv?tagging&versionId=v1", {}, ["s3:PutObjectVersionTagging"]),
        ("GET", "/lake/datasets/a.csv?tagging&versionId=v1", {}, ["s3:GetObjectVersionTagging"]),
        ("DELETE", "/lake/datasets/a.csv?tagging", {}, ["s3:DeleteObjectTagging"]),
        ("PUT", "/lake/datasets/a.csv", {"x-amz-tagging": "k=v"}, ["s3:PutObject", "s3:PutObjectTagging"]),
        ("POST", "/lake/datasets/a.csv?uploads", {}, ["s3:PutObject"]),
        ("PUT", "/lake/datasets/a.csv?partNumber=1&uploadId=u", {}, ["s3:PutObject"]),
        ("GET", "/lake/datasets/a.csv?uploadId=u", {}, ["s3:ListMultipartUploadParts"]),
        ("DELETE", "/lake/datasets/a.csv?uploadId=u", {}, ["s3:AbortMultipartUpload"]),
    ],
)
def test_object_requests(method, path, headers, actions):
    assert s3(method, path, headers) == [(a, OBJ) for a in actions]


def test_a_copy_also_reads_its_source_version():
    headers = {"x-amz-copy-source": "/ingest/producers/acme/a.csv?versionId=v9"}
    assert s3("PUT", "/lake/datasets/a.csv", headers) == [
        ("s3:PutObject", OBJ),
        ("s3:GetObjectVersion", "arn:aws:s3:::ingest/producers/acme/a.csv"),
    ]


@pytest.mark.parametrize(
    ("method", "path", "action"),
    [
        ("HEAD", "/lake", "s3:ListBucket"),
        ("GET", "/lake?list-type=2&prefix=datasets%2F", "s3:ListBucket"),
        ("GET", "/lake?versions&prefix=datasets%2F", "s3:ListBucketVersions"),
        ("GET", "/lake?uploads", "s3:ListBucketMultipartUploads"),
        ("GET", "/lake?location", "s3:GetBucketLocation"),
        ("GET", "/lake?versioning", "s3:GetBucketVersioning"),
        ("PUT", "/lake?versioning", "s3:PutBucketVersioning"),
        ("GET", "/lake?lifecycle", "s3:GetLifecycleConfiguration"),
        ("DELETE", "/lake?lifecycle", "s3:PutLifecycleConfiguration"),
        ("GET", "/lake?encryption", "s3:GetEncryptionConfiguration"),
        ("GET", "/lake?object-lock", "s3:GetBucketObjectLockConfiguration"),
        ("PUT", "/lake?object-lock", "s3:PutBucketObjectLockConfiguration"),
        ("DELETE", "/lake?policy", "s3:DeleteBucketPolicy"),
        ("GET", "/lake?notification", "s3:GetBucketNotification"),
        ("DELETE", "/lake", "s3:DeleteBucket"),
    ],
)
def test_bucket_requests_by_their_sub_resource(method, path, action):
    assert s3(method, path) == [(action, "arn:aws:s3:::lake")]


def test_create_bucket_with_object_lock_and_list_buckets():
    headers = {"x-amz-bucket-object-lock-enabled": "true"}
    assert [a for a, _ in s3("PUT", "/lake", headers)] == [
        "s3:CreateBucket",
        "s3:PutBucketObjectLockConfiguration",
        "s3:PutBucketVersioning",
    ]
    assert (
        s3_needs(S3Request.of("GET", "http://127.0.0.1:5000/", None, None, {}, b""))[0].action == "s3:ListAllMyBuckets"
    )


def test_delete_objects_is_one_action_per_key():
    body = b"<Delete><Object><Key>a</Key><VersionId>v1</VersionId></Object><Object><Key>b&amp;c</Key></Object></Delete>"
    assert s3("POST", "/lake?delete", body=body) == [
        ("s3:DeleteObjectVersion", "arn:aws:s3:::lake/a"),
        ("s3:DeleteObject", "arn:aws:s3:::lake/b&c"),
    ]


def test_a_request_that_maps_to_no_known_action_is_refused_not_guessed():
    with pytest.raises(UnmappedRequest, match="intelligent"):
        s3("GET", "/lake?intelligent")
    with pytest.raises(UnmappedRequest, match="restore-object-frob"):
        s3("PUT", "/lake/datasets/a.csv?restore-object-frob")


def test_retention_condition_keys_come_from_the_headers_or_the_retention_body():
    body = b"<Retention><Mode>COMPLIANCE</Mode><RetainUntilDate>2999-01-01T00:00:00Z</RetainUntilDate></Retention>"
    (need,) = s3_needs(S3Request.of("PUT", "http://h/lake/a?retention", "lake", "a", {}, body))
    assert need.context["s3:object-lock-mode"] == "COMPLIANCE"
    assert int(need.context["s3:object-lock-remaining-retention-days"]) > 300_000
    headers = {"x-amz-object-lock-mode": "GOVERNANCE", "x-amz-object-lock-retain-until-date": "2000-01-01T00:00:00Z"}
    (need,) = s3_needs(S3Request.of("PUT", "http://h/lake/a", "lake", "a", headers, b""))
    assert (need.context["s3:object-lock-mode"], need.context["s3:object-lock-remaining-retention-days"]) == (
        "GOVERNANCE",
        "0",
    )
