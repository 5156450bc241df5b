"""Powertools singletons, created once per process (GUIDE.md section 4), and one way to emit a metric."""

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit

from mlvault.config import function_settings
from mlvault.wiring import NAMESPACE, Dimension

logger = Logger()


def metrics() -> EphemeralMetrics:
    """A metrics batch in mlvault's namespace, without Powertools' service dimension (alarms name Stage only)."""
    return EphemeralMetrics(namespace=NAMESPACE, service="")


def emit(name: str, value: float, *extra: dict[str, str], unit: str = MetricUnit.Count) -> None:
    """One EMF metric, with the dimension set [Stage] plus one set per mapping in `extra` (each with Stage)."""
    stage = function_settings().stage
    batch = metrics()
    batch.add_metric(name=name, unit=unit, value=value)
    batch.add_dimension(name=Dimension.STAGE, value=stage)
    for dimensions in extra:
        batch.add_dimensions(**{Dimension.STAGE: stage}, **dimensions)
    batch.flush_metrics()
