"""What provisioning leaves behind: every resource's physical id, the exports, and what the Lambda runtime and
the server need of the functions, layers, event source mappings and principals (provision.py fills it)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class FunctionSpec:
    """A provisioned function, as the runtime and the poller know it (what a version runs, its code, handler,
    layers, role and limits, is read from the function itself: services/lambda_code.py)."""

    name: str
    arn: str
    role_arn: str  # the execution role it was provisioned with (the poller reads its queue with it)
    log_group: str | None
    dead_letter_arn: str | None


@dataclass
class Deployment:
    """Everything provisioned: per stack, logical id -> (type, physical id)."""

    account: str
    resources: dict[str, dict[str, tuple[str, str]]] = field(default_factory=dict)
    exports: dict[str, Any] = field(default_factory=dict)
    functions: dict[str, FunctionSpec] = field(default_factory=dict)  # function name -> spec
    code_signing_configs: dict[str, dict[str, Any]] = field(default_factory=dict)  # ARN -> publishers, policies
    event_source_mappings: list[str] = field(default_factory=list)  # UUIDs
    custom_resources: dict[str, dict[str, Any]] = field(default_factory=dict)  # stack/logical id -> id, Data
    principals: dict[str, str] = field(default_factory=dict)  # access key id -> principal ARN

    def physical_id(self, stack_suffix: str, type_: str, predicate: Callable[[str], bool] = lambda _: True) -> str:
        """The physical id of the one resource of a type in the stack whose name ends with the suffix."""
        found = [
            physical
            for stack, resources in self.resources.items()
            if stack.endswith(stack_suffix)
            for logical, (t, physical) in resources.items()
            if t == type_ and predicate(logical)
        ]
        if len(found) != 1:
            raise LookupError(f"expected one {type_} in *{stack_suffix}, found {found}")
        return found[0]
