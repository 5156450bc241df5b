"""IAM resources: roles (inline and managed policies) and policies attached to roles, users and groups."""

from __future__ import annotations

import json
from typing import Any

from localcloud.resources.cfn_context import Handler, ResourceContext, tags


def role(c: ResourceContext) -> tuple[Any, dict[str, Any]]:
    p = c.take(
        "RoleName",
        "AssumeRolePolicyDocument",
        "Description",
        "Path",
        "MaxSessionDuration",
        "Policies",
        "ManagedPolicyArns",
        "Tags",
    )
    iam = c.client("iam")
    name = p.get("RoleName") or c.unique_name(64)
    args = {
        "RoleName": name,
        "AssumeRolePolicyDocument": json.dumps(p["AssumeRolePolicyDocument"]),
        "Description": p.get("Description", ""),
        "Path": p.get("Path", "/"),
        "Tags": tags(p),
    }
    if "MaxSessionDuration" in p:
        args["MaxSessionDuration"] = int(p["MaxSessionDuration"])
    role = iam.create_role(**args)["Role"]
    for inline in p.get("Policies", []):
        iam.put_role_policy(
            RoleName=name, PolicyName=inline["PolicyName"], PolicyDocument=json.dumps(inline["PolicyDocument"])
        )
    for arn in p.get("ManagedPolicyArns", []):
        iam.attach_role_policy(RoleName=name, PolicyArn=arn)
    return name, {"Arn": role["Arn"], "RoleId": role["RoleId"]}


def policy(c: ResourceContext) -> tuple[Any, dict[str, Any]]:
    p = c.take("PolicyName", "PolicyDocument", "Roles", "Users", "Groups")
    iam = c.client("iam")
    document = json.dumps(p["PolicyDocument"])
    for role in p.get("Roles", []):
        iam.put_role_policy(RoleName=role, PolicyName=p["PolicyName"], PolicyDocument=document)
    for user in p.get("Users", []):
        iam.put_user_policy(UserName=user, PolicyName=p["PolicyName"], PolicyDocument=document)
    for group in p.get("Groups", []):
        iam.put_group_policy(GroupName=group, PolicyName=p["PolicyName"], PolicyDocument=document)
    return c.unique_name(64), {}


HANDLERS: dict[str, Handler] = {
    "AWS::IAM::Role": role,
    "AWS::IAM::Policy": policy,
}
