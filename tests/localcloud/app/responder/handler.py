"""Test function of the local-cloud test app: a CloudFormation custom resource provider that answers its
ResponseURL (as cfn-response does): SUCCESS with Data, FAILED with a Reason, or nothing at all, as asked."""

import json
import urllib.request


def handler(event, context):
    props = event["ResourceProperties"]
    if props.get("Silent") == "true":
        return {"answered": False}
    failed = props.get("Fail") == "true"
    response = {
        "Status": "FAILED" if failed else "SUCCESS",
        "Reason": props.get("Reason", "") if failed else "",
        "PhysicalResourceId": f"answer-{props.get('Question', 'none')}",
        "StackId": event["StackId"],
        "RequestId": event["RequestId"],
        "LogicalResourceId": event["LogicalResourceId"],
        "Data": {"Answer": str(len(props.get("Question", ""))), "Echo": props.get("Question", "")},
    }
    body = json.dumps(response).encode()
    request = urllib.request.Request(event["ResponseURL"], data=body, method="PUT", headers={"Content-Type": ""})  # noqa: S310
    with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310 - the URL CloudFormation gave
        return {"answered": True, "status": answer.status}
