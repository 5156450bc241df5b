"""The resource types the local cloud provisions, by service family: each module's HANDLERS maps a
CloudFormation type to the function that creates it (resources/cfn_context.py says what a handler gets)."""

from __future__ import annotations

from localcloud.resources import (
    cfn_custom,
    cfn_data,
    cfn_iam,
    cfn_lambda,
    cfn_messaging,
    cfn_monitoring,
    cfn_s3,
    cfn_workflow,
)
from localcloud.resources.cfn_context import Handler

HANDLERS: dict[str, Handler] = {
    **cfn_data.HANDLERS,
    **cfn_s3.HANDLERS,
    **cfn_messaging.HANDLERS,
    **cfn_iam.HANDLERS,
    **cfn_monitoring.HANDLERS,
    **cfn_lambda.HANDLERS,
    **cfn_workflow.HANDLERS,
    **cfn_custom.HANDLERS,
}


def handler_for(type_: str) -> Handler | None:
    """The handler of a resource type (every `Custom::<Name>` is a custom resource)."""
    return HANDLERS.get(type_) or cfn_custom.handler_for(type_)
