"""The parameters of the built-in trainer (cdk.json `training`, validated at synth and again in the function)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class TrainingParams:
    seed: int = 0
    epochs: int = 200
    learning_rate: float = 0.5
    l2: float = 1e-4
    heldout_fraction: float = 0.2
    protected_as_features: bool = True
    max_rows: int = 500_000  # the training set is held in memory: bounded before reading

    def __post_init__(self) -> None:
        if not (isinstance(self.epochs, int) and self.epochs >= 1):
            raise ValueError(f"epochs must be a positive integer, got {self.epochs!r}")
        if not (self.learning_rate > 0 and math.isfinite(self.learning_rate)):
            raise ValueError(f"learning_rate must be a positive number, got {self.learning_rate!r}")
        if not (self.l2 >= 0 and math.isfinite(self.l2)):
            raise ValueError(f"l2 must be a non-negative number, got {self.l2!r}")
        if not 0 < self.heldout_fraction < 1:
            raise ValueError(f"heldout_fraction must be in (0, 1), got {self.heldout_fraction!r}")
        if not (isinstance(self.max_rows, int) and self.max_rows >= 1):
            raise ValueError(f"max_rows must be a positive integer, got {self.max_rows!r}")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)
