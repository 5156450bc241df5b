"""The poisoning screen: a profile of each batch, compared with the dataset's baseline.

A profile is built in one streaming pass (memory constant in rows): for numeric features, counts over fine
fixed-width bins across the contract's range; for text features and the label, value counts; per protected
attribute, label counts per group. The comparison bins numeric features at the *baseline's* quantiles (GUIDE.md
section 7: fixed-width bins over the contract range can miss real shifts) and computes:

- PSI per feature (population stability index),
- PSI of the label distribution (flipped labels move it),
- statistical parity: the largest gap, over labels, between groups' label rates, against the baseline's gap.

Thresholds come from the contract's `screening` section.
"""

from __future__ import annotations

import gzip
import itertools
import json
import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from mlvault.contracts.schema import NUMERIC, Contract, ContractError
from mlvault.drift import SMOOTHING, psi  # noqa: F401 - one PSI for the screen and serving (pure Python)

FINE_BINS = 512
QUANTILE_BINS = 10
_SEP = "\x1f"


@dataclass
class Profile:
    rows: int = 0
    numeric: dict[str, list[int]] = field(default_factory=dict)  # FINE_BINS + under/overflow, per feature
    categorical: dict[str, Counter] = field(default_factory=dict)
    nulls: Counter = field(default_factory=Counter)
    label: Counter = field(default_factory=Counter)
    groups: dict[str, Counter] = field(default_factory=dict)  # attribute -> Counter of "group\x1flabel"
    conditional: dict[str, Counter] = field(default_factory=dict)  # feature -> Counter of "label\x1fbin"

    def to_json(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "numeric": self.numeric,
            "categorical": {k: dict(v) for k, v in self.categorical.items()},
            "nulls": dict(self.nulls),
            "label": dict(self.label),
            "groups": {k: dict(v) for k, v in self.groups.items()},
            "conditional": {k: dict(v) for k, v in self.conditional.items()},
        }

    def merged(self, other: Profile) -> Profile:
        """The profile of both batches together (a learned baseline grows this way)."""
        return Profile(
            rows=self.rows + other.rows,
            numeric={
                name: [a + b for a, b in zip(self.numeric.get(name, [0] * len(bins)), bins, strict=True)]
                for name, bins in other.numeric.items()
            },
            categorical={k: self.categorical.get(k, Counter()) + v for k, v in other.categorical.items()},
            nulls=self.nulls + other.nulls,
            label=self.label + other.label,
            groups={k: self.groups.get(k, Counter()) + v for k, v in other.groups.items()},
            conditional={k: self.conditional.get(k, Counter()) + v for k, v in other.conditional.items()},
        )

    def to_bytes(self) -> bytes:
        """Compact, for a ledger record (DynamoDB items are capped at 400 KB)."""
        return gzip.compress(json.dumps(self.to_json(), separators=(",", ":")).encode(), mtime=0)

    @classmethod
    def from_bytes(cls, data: bytes) -> Profile:
        return cls.from_json(json.loads(gzip.decompress(data)))

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Profile:
        return cls(
            rows=data["rows"],
            numeric={k: list(v) for k, v in data["numeric"].items()},
            categorical={k: Counter(v) for k, v in data["categorical"].items()},
            nulls=Counter(data["nulls"]),
            label=Counter(data["label"]),
            groups={k: Counter(v) for k, v in data["groups"].items()},
            conditional={k: Counter(v) for k, v in data.get("conditional", {}).items()},
        )


def features(contract: Contract) -> tuple[list[str], list[str]]:
    """(numeric, categorical) features: every column but keys, the label and the protected attributes; numeric
    ones need both bounds in the contract (their bins span them)."""
    skip = {contract.label, *contract.protected_attributes}
    numeric, categorical = [], []
    for c in contract.columns:
        if c.name in skip or c.unique:
            continue
        if c.type in NUMERIC and c.min is not None and c.max is not None:
            numeric.append(c.name)
        elif c.type == "string" and c.pattern is None:
            categorical.append(c.name)
    return numeric, categorical


class ProfileBuilder:
    """Builds a batch's profile one record batch at a time (pass `add` as the validator's observer)."""

    def __init__(self, contract: Contract) -> None:
        self.contract = contract
        self.numeric_features, self.categorical_features = features(contract)
        self.profile = Profile(
            numeric={n: [0] * (FINE_BINS + 2) for n in self.numeric_features},
            categorical={n: Counter() for n in self.categorical_features},
            groups={a: Counter() for a in contract.protected_attributes},
        )

    def add(self, batch: pa.RecordBatch) -> None:
        contract, profile = self.contract, self.profile
        profile.rows += batch.num_rows
        label = _text(_column(batch, contract.label)) if contract.label else None
        for name in self.numeric_features:
            column = contract.column(name)
            values = _column(batch, name)
            profile.nulls[name] += values.null_count
            width = (column.max - column.min) / FINE_BINS
            index = pc.cast(
                pc.floor(pc.divide(pc.subtract(pc.cast(values, pa.float64()), column.min), width)), pa.int64()
            )
            index = pc.add(pc.min_element_wise(pc.max_element_wise(index, -1), FINE_BINS), 1)
            for entry in pc.value_counts(index.drop_null()).to_pylist():
                profile.numeric[name][entry["values"]] += entry["counts"]
            if label is not None:  # the feature's distribution per label: flipped labels move these
                pairs = pc.binary_join_element_wise(label, pc.cast(index, pa.string()), _SEP)
                profile.conditional.setdefault(name, Counter()).update(_counts(pairs))
        for name in self.categorical_features:
            values = _column(batch, name)
            profile.nulls[name] += values.null_count
            profile.categorical[name].update(_counts(values))
        if label is not None:
            profile.label.update(_counts(label))
            for attribute in contract.protected_attributes:
                pairs = pc.binary_join_element_wise(_text(_column(batch, attribute)), label, _SEP)
                profile.groups[attribute].update(_counts(pairs))


def build_profile(batches: Iterable[pa.RecordBatch], contract: Contract) -> Profile:
    builder = ProfileBuilder(contract)
    for batch in batches:
        builder.add(batch)
    return builder.profile


def _column(batch: pa.RecordBatch, name: str) -> pa.Array:
    values = batch.column(batch.schema.get_field_index(name))
    return values.dictionary_decode() if pa.types.is_dictionary(values.type) else values


def _text(values: pa.Array) -> pa.Array:
    return values if pa.types.is_string(values.type) else pc.cast(values, pa.string())


def _counts(values: pa.Array) -> Counter:
    return Counter({e["values"]: e["counts"] for e in pc.value_counts(values.drop_null()).to_pylist()})


def sampling_noise(bins: int, rows: float, baseline_rows: float) -> float:
    """The PSI two samples of the same distribution show by chance (its expectation, about (k - 1)(1/n + 1/m)):
    a batch is flagged only when its PSI exceeds the contract's threshold by more than that, so that small clean
    batches raise no false alarm, and small batches can only be flagged for large shifts."""
    return (bins - 1) * (1 / max(rows, 1) + 1 / max(baseline_rows, 1))


def quantile_bins(baseline: list[int], bins: int = QUANTILE_BINS) -> list[int]:
    """Boundaries (indices into the fine bins) at the baseline's quantiles; ties merge bins."""
    total = sum(baseline)
    cuts, running, target = [], 0, 1
    for index, count in enumerate(baseline):
        running += count
        while target < bins and running >= total * target / bins:
            cuts.append(index + 1)
            target += 1
    return sorted(set(c for c in cuts if 0 < c < len(baseline)))


def _regroup(counts: list[int], cuts: list[int]) -> list[int]:
    edges = [0, *cuts, len(counts)]
    return [sum(counts[a:b]) for a, b in itertools.pairwise(edges)]


MIN_CLASS_ROWS = 200  # a label with fewer rows in the batch or baseline is too small to compare


def _worst_conditional_psi(batch: Counter, baseline: Counter) -> tuple[str, float, float] | None:
    """The label whose feature distribution moved most (beyond sampling noise) from the baseline's for that
    label: (label, PSI, noise)."""

    def per_label(pairs: Counter) -> dict[str, list[int]]:
        out: dict[str, list[int]] = {}
        for key, count in pairs.items():
            label, index = key.rsplit(_SEP, 1)
            out.setdefault(label, [0] * (FINE_BINS + 2))[int(index)] += count
        return out

    new, old = per_label(batch), per_label(baseline)
    worst = None
    for label, counts in new.items():
        reference = old.get(label)
        if reference is None or sum(counts) < MIN_CLASS_ROWS or sum(reference) < MIN_CLASS_ROWS:
            continue
        cuts = quantile_bins(reference)
        value = psi(_regroup(reference, cuts), _regroup(counts, cuts))
        noise = sampling_noise(len(cuts) + 1, sum(counts), sum(reference))
        if worst is None or value - noise > worst[1] - worst[2]:
            worst = (label, value, noise)
    return worst


def parity_gap(groups: Counter) -> float:
    """The largest difference, over labels, between two groups' rates of that label."""
    per_group: dict[str, Counter] = {}
    for key, count in groups.items():
        group, label = key.split(_SEP, 1)
        per_group.setdefault(group, Counter())[label] += count
    labels = {label for counts in per_group.values() for label in counts}
    gap = 0.0
    for label in labels:
        rates = [counts[label] / sum(counts.values()) for counts in per_group.values() if sum(counts.values())]
        if len(rates) > 1:
            gap = max(gap, max(rates) - min(rates))
    return gap


@dataclass(frozen=True)
class Finding:
    check: str  # "feature_psi" | "label_feature_psi" | "label_psi" | "parity"
    name: str
    value: float
    threshold: float
    noise: float = 0.0  # what this sample size shows by chance: flagged over threshold + noise

    def __str__(self) -> str:
        return f"{self.check} {self.name}: {self.value:.3f} > {self.threshold} + {self.noise:.3f} sampling noise"


def _parity_noise(groups: Counter) -> float:
    """Two standard errors of a gap between the two smallest groups' label rates (at the worst case p = 0.5)."""
    sizes: Counter = Counter()
    for key, count in groups.items():
        sizes[key.split(_SEP, 1)[0]] += count
    smallest = sorted(sizes.values())[:2]
    if len(smallest) < 2:
        return 0.0
    return 2 * math.sqrt(0.25 * (1 / max(smallest[0], 1) + 1 / max(smallest[1], 1)))


def compare(
    batch: Profile, baseline: Profile, *, feature_psi: float, label_psi: float, parity_increase: float
) -> list[Finding]:
    """What makes the batch look poisoned against the baseline (empty when it does not)."""
    findings = []

    def check(kind: str, name: str, value: float, threshold: float, noise: float) -> None:
        if value > threshold + noise:
            findings.append(Finding(kind, name, value, threshold, noise))

    for name, counts in batch.numeric.items():
        cuts = quantile_bins(baseline.numeric[name])
        value = psi(_regroup(baseline.numeric[name], cuts), _regroup(counts, cuts))
        check("feature_psi", name, value, feature_psi, sampling_noise(len(cuts) + 1, sum(counts), baseline.rows))
    for name, counts in batch.categorical.items():
        keys = sorted(set(counts) | set(baseline.categorical[name]))
        value = psi([baseline.categorical[name][k] for k in keys], [counts[k] for k in keys])
        check("feature_psi", name, value, feature_psi, sampling_noise(len(keys), batch.rows, baseline.rows))
    for name, pairs in batch.conditional.items():
        worst = _worst_conditional_psi(pairs, baseline.conditional.get(name, Counter()))
        if worst is not None:
            check("label_feature_psi", f"{name}|{worst[0]}", worst[1], feature_psi, worst[2])
    if batch.label:
        keys = sorted(set(batch.label) | set(baseline.label))
        value = psi([baseline.label[k] for k in keys], [batch.label[k] for k in keys])
        check("label_psi", "label", value, label_psi, sampling_noise(len(keys), batch.rows, baseline.rows))
    for attribute, groups in batch.groups.items():
        increase = parity_gap(groups) - parity_gap(baseline.groups[attribute])
        check("parity", attribute, increase, parity_increase, _parity_noise(groups))
    return findings


def load_baseline(directory: str | Path, contract: Contract) -> Profile:
    """The baseline profile a contract pins (`screening.baseline`), checked against the contract's features."""
    path = Path(directory) / str(contract.screening.baseline)
    if not path.is_file():
        raise ContractError(f"{contract.dataset}: pinned baseline {path} does not exist")
    try:
        baseline = Profile.from_json(json.loads(path.read_text()))
    except (ValueError, KeyError, TypeError) as err:
        raise ContractError(f"{contract.dataset}: pinned baseline {path} is not a profile ({err})") from None
    numeric, categorical = features(contract)
    if sorted(baseline.numeric) != sorted(numeric) or sorted(baseline.categorical) != sorted(categorical):
        raise ContractError(
            f"{contract.dataset}: pinned baseline {path} profiles features {sorted(baseline.numeric)} + "
            f"{sorted(baseline.categorical)}, the contract has {numeric} + {categorical}"
        )
    return baseline
