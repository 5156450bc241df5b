#!/usr/bin/env python3
"""mlvault CDK entry point: `cdk synth` / `cdk deploy -c stage=dev|prod`."""

import sys

from aws_cdk import App

from infra.assembly import build
from infra.policy.rules import enforce
from infra.settings import ConfigError

try:
    app = App()
    mlvault = build(app)
    assembly = app.synth()
except ConfigError as err:
    sys.exit(f"mlvault: configuration error: {err}")
sys.exit(enforce(assembly, mlvault.settings))
