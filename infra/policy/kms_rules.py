"""MLV-KMS-GUARDS: every KMS key's own policy carries the guards that no IAM policy can lift (an explicit Deny
wins), as the locked buckets' policies do for their objects and policies:

- kms:ScheduleKeyDeletion, kms:DisableKey, kms:DisableKeyRotation, kms:DeleteImportedKeyMaterial denied to every
  principal but the break-glass role;
- kms:PutKeyPolicy denied to every principal but break-glass and the CDK deployment role (CloudFormation updates
  the KeyPolicy on `cdk deploy`);
- kms:CreateGrant denied to every principal but break-glass, except grants an AWS service creates for its
  resources (kms:GrantIsForAWSResource: a DynamoDB table, a function's encrypted environment).

A deny that exempts anyone else, or whose condition adds anything that narrows it, does not count.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

from infra.policy.spec import (
    GRANT_FOR_AWS_RESOURCE_CONDITION_KEY,
    KEY_DESTRUCTION_ACTIONS,
    KEY_GRANT_ACTIONS,
    KEY_POLICY_ACTIONS,
)
from infra.policy.template_refs import Violation, action_matches, as_list, is_everyone, props, resources, statements

KMS_KEY = "AWS::KMS::Key"
RULE = "MLV-KMS-GUARDS"
BREAK_GLASS = "break-glass"
DEPLOYER = "deployer"


def _exempt_kind(value: Any, break_glass_role: str, qualifier: str) -> str | None:
    text = json.dumps(value)
    if re.search(rf':role/{re.escape(break_glass_role)}"[\]}}\s]*$', text):
        return BREAK_GLASS
    if f":role/cdk-{qualifier}-cfn-exec-role-" in text:
        return DEPLOYER
    return None


def _guards(
    statement: Mapping[str, Any],
    action: str,
    allowed: set[str],
    extra_condition: Mapping[str, Mapping[str, str]],
    break_glass_role: str,
    qualifier: str,
) -> bool:
    """The statement denies `action` on the key to everyone but principals of the `allowed` kinds."""
    if statement.get("Effect") != "Deny" or not is_everyone(statement.get("Principal")):
        return False
    if not any(action_matches(a, action) for a in as_list(statement.get("Action"))):
        return False
    if "*" not in as_list(statement.get("Resource")):
        return False
    condition = dict(statement.get("Condition") or {})
    exempting = condition.pop("ArnNotEquals", None)
    if condition and condition != extra_condition:
        return False
    if exempting is None:
        return True  # denied to everyone: stricter still
    if set(exempting) != {"aws:PrincipalArn"}:
        return False
    kinds = [_exempt_kind(v, break_glass_role, qualifier) for v in as_list(exempting["aws:PrincipalArn"])]
    return all(k in allowed for k in kinds)


def check_keys(
    stack: str, template: Mapping[str, Any], *, break_glass_role: str, cdk_qualifier: str
) -> Iterator[Violation]:
    required = [
        *((a, {BREAK_GLASS}, {}) for a in KEY_DESTRUCTION_ACTIONS),
        *((a, {BREAK_GLASS, DEPLOYER}, {}) for a in KEY_POLICY_ACTIONS),
        *((a, {BREAK_GLASS}, {"Bool": {GRANT_FOR_AWS_RESOURCE_CONDITION_KEY: "false"}}) for a in KEY_GRANT_ACTIONS),
    ]
    who = {
        frozenset({BREAK_GLASS}): f"the break-glass role '{break_glass_role}'",
        frozenset({BREAK_GLASS, DEPLOYER}): f"break-glass '{break_glass_role}' and the CDK deployment role",
    }
    for key_id, key in resources(template, KMS_KEY):
        policy = statements(props(key).get("KeyPolicy"))
        for action, allowed, extra in required:
            if not any(_guards(s, action, allowed, extra, break_glass_role, cdk_qualifier) for s in policy):
                unless = " (grants AWS services create for their resources aside)" if extra else ""
                yield Violation(
                    RULE,
                    stack,
                    key_id,
                    f"key policy must deny {action} to every principal but {who[frozenset(allowed)]}{unless}",
                )
