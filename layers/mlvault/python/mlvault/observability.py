"""Powertools singletons, created once per process (GUIDE.md section 4), and one way to emit a metric."""

import os

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit

logger = Logger()
NAMESPACE = "mlvault"


def emit(name: str, value: float, *extra: dict[str, str], unit: str = MetricUnit.Count) -> None:
    """One EMF metric, with the dimension set [Stage] plus one set per mapping in `extra` (each with Stage)."""
    stage = os.environ.get("MLVAULT_STAGE", "unknown")
    metrics = EphemeralMetrics(namespace=NAMESPACE, service="")  # no service dimension: alarms name Stage only
    metrics.add_metric(name=name, unit=unit, value=value)
    metrics.add_dimension(name="Stage", value=stage)
    for dimensions in extra:
        metrics.add_dimensions(Stage=stage, **dimensions)
    metrics.flush_metrics()
