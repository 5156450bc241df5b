"""The poisoning screen: a profile of each batch, compared with the dataset's baseline.

A profile is built in one streaming pass (memory constant in rows): for numeric features, counts over fine
fixed-width bins across the contract's range; for text features and the label, value counts (at most
MAX_VALUES values per feature, the rest counted together); each feature's counts per label; per protected
attribute, label counts per group. A column the file lacks (`required: false`) is profiled as nulls. The
comparison bins numeric features at the *baseline's* quantiles (GUIDE.md section 7: fixed-width bins over the
contract range can miss real shifts) and computes:

- PSI per feature (population stability index),
- PSI of a numeric feature within each label,
- the label-conditional view: the label's rate within each of the baseline's bins of a feature, against the
  baseline's rate there, as an estimate of the share of labels flipped (uniformly to another label, or into one
  label) -- flipped labels leave the features and often the label counts unchanged, but not this,
- PSI of the label distribution,
- statistical parity: the largest gap, over labels, between groups' label rates, against the baseline's gap.

Each statistic is compared with the contract's threshold (`screening`) plus the sampling noise of the two sample
sizes. `screen_batch` is the screen of one batch, for ingest and the producer's pre-flight alike: the findings,
the action, and each check it skipped with why (a batch under `screening.min_rows`, a label under
MIN_CLASS_ROWS, a feature the baseline lacks...). Pure functions: the rolling screen over small batches keeps its
state in the ledger (mlvault.contracts.gate).
"""

from __future__ import annotations

import gzip
import itertools
import json
import math
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from mlvault.contracts.schema import NUMERIC, Contract, ContractError, Screening
from mlvault.drift import SMOOTHING, psi  # one PSI for the screen and serving (pure Python)

FINE_BINS = 512
QUANTILE_BINS = 10
FLIP_NOISE_SE = 3  # the label-conditional view's noise: standard errors (several features and directions at once)
MAX_VALUES = 100  # text values counted per feature; the others are counted together under OTHER
OTHER = "\x1fother"  # not a value a file can hold in a text feature (\x1f is the key separator)
_SEP = "\x1f"
ACCEPT, HOLD, REJECT = "accept", "hold", "reject"  # what happens to a batch (HOLD, REJECT: `screening.action`)


@dataclass
class Profile:
    rows: int = 0
    numeric: dict[str, list[int]] = field(default_factory=dict)  # FINE_BINS + under/overflow, per feature
    categorical: dict[str, Counter] = field(default_factory=dict)
    nulls: Counter = field(default_factory=Counter)
    label: Counter = field(default_factory=Counter)
    groups: dict[str, Counter] = field(default_factory=dict)  # attribute -> Counter of "group\x1flabel"
    conditional: dict[str, Counter] = field(default_factory=dict)  # numeric feature -> Counter of "label\x1fbin"
    # text feature -> Counter of "label\x1fvalue" (profiles written before it have none: the view skips them)
    categorical_conditional: dict[str, Counter] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "numeric": self.numeric,
            "categorical": {k: dict(v) for k, v in self.categorical.items()},
            "nulls": dict(self.nulls),
            "label": dict(self.label),
            "groups": {k: dict(v) for k, v in self.groups.items()},
            "conditional": {k: dict(v) for k, v in self.conditional.items()},
            "categorical_conditional": {k: dict(v) for k, v in self.categorical_conditional.items()},
        }

    def merged(self, other: Profile) -> Profile:
        """The profile of both batches together (a learned baseline and a rolling window grow this way)."""
        merged = Profile(
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
            categorical_conditional={
                k: self.categorical_conditional.get(k, Counter()) + v for k, v in other.categorical_conditional.items()
            },
        )
        for name in merged.categorical:
            _bound_values(merged, name)
        return merged

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
            categorical_conditional={k: Counter(v) for k, v in data.get("categorical_conditional", {}).items()},
        )


def _bound_values(profile: Profile, name: str) -> None:
    """At most MAX_VALUES values of a text feature (the most frequent; ties by value), the rest under OTHER:
    a profile stays small (a ledger item is capped at 400 KB) and a builder's memory constant, whatever the
    feature's cardinality."""
    counts = profile.categorical[name]
    if len(counts) <= MAX_VALUES:
        return
    ranked = sorted((k for k in counts if k != OTHER), key=lambda k: (-counts[k], k))
    folded = set(ranked[MAX_VALUES - 1 :])
    kept = Counter({k: v for k, v in counts.items() if k not in folded and k != OTHER})
    kept[OTHER] = counts[OTHER] + sum(counts[k] for k in folded)
    profile.categorical[name] = kept
    pairs = profile.categorical_conditional.get(name)
    if pairs:
        bounded: Counter = Counter()
        for key, count in pairs.items():
            label, value = key.split(_SEP, 1)
            bounded[f"{label}{_SEP}{OTHER if value in folded else value}"] += count
        profile.categorical_conditional[name] = bounded


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
        if label is not None and label.null_count == len(label):
            label = None  # no labels in this batch (an absent optional label column): nothing per label
        for name in self.numeric_features:
            column = contract.column(name)
            values = _column(batch, name, pa.float64())
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
            values = _text(_column(batch, name))
            profile.nulls[name] += values.null_count
            profile.categorical[name].update(_counts(values))
            if label is not None and values.null_count < len(values):  # the label's rate per value
                pairs = pc.binary_join_element_wise(label, values, _SEP)
                profile.categorical_conditional.setdefault(name, Counter()).update(_counts(pairs))
            _bound_values(profile, name)
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


def _column(batch: pa.RecordBatch, name: str, absent: pa.DataType | None = None) -> pa.Array:
    """A column of the batch; all nulls when the file lacks it (a column the contract does not require)."""
    index = batch.schema.get_field_index(name)
    if index < 0:
        return pa.nulls(batch.num_rows, absent or pa.string())
    values = batch.column(index)
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


def _worst_conditional_psi(
    batch: Counter, baseline: Counter, left_out: list[tuple[str, int, int | None]] | None = None
) -> tuple[str, float, float] | None:
    """The label whose feature distribution moved most (beyond sampling noise) from the baseline's for that
    label: (label, PSI, noise). Each label left out (absent from the baseline, or under MIN_CLASS_ROWS in either)
    is added to `left_out` as (label, its rows in the batch, in the baseline or None)."""

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
            if left_out is not None:
                left_out.append((label, sum(counts), None if reference is None else sum(reference)))
            continue
        cuts = quantile_bins(reference)
        value = psi(_regroup(reference, cuts), _regroup(counts, cuts))
        noise = sampling_noise(len(cuts) + 1, sum(counts), sum(reference))
        if worst is None or value - noise > worst[1] - worst[2]:
            worst = (label, value, noise)
    return worst


def _per_label_bins(pairs: Counter, bins: list[str] | None) -> dict[str, list[int]]:
    """Counter of "label\x1fbin" -> label -> counts per bin: fine-bin indices (bins None) or the given values."""
    out: dict[str, list[int]] = {}
    position = None if bins is None else {b: i for i, b in enumerate(bins)}
    size = FINE_BINS + 2 if bins is None else len(bins)
    for key, count in pairs.items():
        label, where = key.rsplit(_SEP, 1) if bins is None else key.split(_SEP, 1)
        index = int(where) if position is None else position.get(where)
        if index is not None:
            out.setdefault(label, [0] * size)[index] += count
    return out


def flip_estimate(batch: dict[str, list[int]], baseline: dict[str, list[int]]) -> tuple[str, float, float] | None:
    """The label-conditional view of one feature: from the label counts per bin of the batch and of the baseline
    (label -> counts, over the same bins), the share of the batch's labels that look flipped, as
    (direction, estimate, noise) for the direction that stands out most; None without two labels.

    In a bin where the label rates are r, a share f of labels flipped uniformly to another label moves them to
    r + f D with D = (1 - K r) / (K - 1) over K labels; flipped into one label t, D = 1 - r for t and -r for the
    others. For each direction the estimate is the two-sample score of that one-parameter model at f = 0, summed
    over the bins: f = sum h (k/n - c/m) D / r / sum h D^2 / r, with k, n the batch's label counts and rows in the
    bin, c, m the baseline's, h = n m / (n + m), and r the two samples' pooled, Laplace-smoothed rates (pooled,
    the weights are uncorrelated with the difference of rates: no bias from a small baseline). Its standard
    error is 1 / sqrt(sum h D^2 / r); the noise is FLIP_NOISE_SE of them."""
    labels = sorted(baseline)
    k = len(labels)
    if k < 2:
        return None
    directions: list[str] = ["", *labels]  # "": uniformly to another label; t: into label t
    sums = {d: [0.0, 0.0] for d in directions}  # score, information
    for b in range(len(baseline[labels[0]])):
        counts = [baseline[y][b] for y in labels]
        observed = [batch[y][b] if y in batch else 0 for y in labels]
        m, n = sum(counts), sum(observed)
        if n == 0 or m == 0:
            continue
        h = n * m / (n + m)
        rates = [(c + o + SMOOTHING) / (m + n + SMOOTHING * k) for c, o in zip(counts, observed, strict=True)]
        differences = [o / n - c / m for c, o in zip(counts, observed, strict=True)]
        for d in directions:
            if d:
                t = labels.index(d)
                shift = [(1 - rates[t]) if i == t else -r for i, r in enumerate(rates)]
            else:
                shift = [(1 - k * r) / (k - 1) for r in rates]
            total = sums[d]
            total[0] += h * sum(x * s / r for x, r, s in zip(differences, rates, shift, strict=True))
            total[1] += h * sum(s * s / r for r, s in zip(rates, shift, strict=True))
    worst = None
    for d, (score, information) in sums.items():
        if information <= 0:
            continue
        estimate, noise = score / information, FLIP_NOISE_SE / math.sqrt(information)
        if worst is None or estimate - noise > worst[1] - worst[2]:
            worst = (d, estimate, noise)
    return worst


def _flip_findings(
    batch: Profile, baseline: Profile, threshold: float, skip: Callable[[Skipped], None] | None = None
) -> list[Finding]:
    """The label-conditional view of every feature the batch and the baseline both profile per label; `skip`
    hears of each feature whose view could not be computed, and why."""
    found = []
    views: list[tuple[str, dict[str, list[int]], dict[str, list[int]]]] = []

    def skipped(name: str, why: str) -> None:
        if skip is not None:
            skip(Skipped("label_flip", name, f"label_flip {name} skipped: {why}"))

    for name, pairs in batch.conditional.items():
        if not (name in baseline.conditional and name in baseline.numeric):
            skipped(name, f"the baseline has no per-label counts of {name}")
        else:
            cuts = quantile_bins(baseline.numeric[name])
            new, old = _per_label_bins(pairs, None), _per_label_bins(baseline.conditional[name], None)
            views.append(
                (
                    name,
                    {y: _regroup(c, cuts) for y, c in new.items()},
                    {y: _regroup(c, cuts) for y, c in old.items()},
                )
            )
    for name, pairs in batch.categorical_conditional.items():
        if name not in baseline.categorical_conditional:  # a profile written before the view
            skipped(name, f"the baseline has no per-label counts of {name}")
        else:
            values = sorted(baseline.categorical.get(name, {}))
            views.append(
                (name, _per_label_bins(pairs, values), _per_label_bins(baseline.categorical_conditional[name], values))
            )
    for name, new, old in views:
        estimate = flip_estimate(new, old)
        if estimate is None:
            # with two labels, every bin holding rows of both samples informs the estimate
            skipped(
                name,
                f"the baseline has fewer than two labels where {name} has a value"
                if len(old) < 2
                else "no bin holds rows of both the batch and the baseline",
            )
        elif estimate[1] > threshold + estimate[2]:
            direction, value, noise = estimate
            found.append(
                Finding("label_flip", f"{name}|to {direction}" if direction else name, value, threshold, noise)
            )
    return found


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
    check: str  # "feature_psi" | "label_feature_psi" | "label_flip" | "label_psi" | "parity"
    name: str
    value: float
    threshold: float
    noise: float = 0.0  # what this sample size shows by chance: flagged over threshold + noise

    def __str__(self) -> str:
        return f"{self.check} {self.name}: {self.value:.3f} > {self.threshold} + {self.noise:.3f} sampling noise"

    def to_json(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "name": self.name,
            "value": self.value,
            "threshold": self.threshold,
            "noise": self.noise,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Finding:
        return cls(data["check"], data["name"], data["value"], data["threshold"], data.get("noise", 0.0))


def _parity_noise(groups: Counter) -> float:
    """Two standard errors of a gap between the two smallest groups' label rates (at the worst case p = 0.5)."""
    sizes: Counter = Counter()
    for key, count in groups.items():
        sizes[key.split(_SEP, 1)[0]] += count
    smallest = sorted(sizes.values())[:2]
    if len(smallest) < 2:
        return 0.0
    return 2 * math.sqrt(0.25 * (1 / max(smallest[0], 1) + 1 / max(smallest[1], 1)))


SCREEN = "screen"  # the check of a Skipped that is the whole batch: it was not compared at all
LABELS = "labels"  # the check of a Skipped that is every check needing labels (label_psi, label_feature_psi, ...)


@dataclass(frozen=True)
class Skipped:
    """A check the screen did not run, and why."""

    check: str  # SCREEN, LABELS or a Finding's check: "feature_psi", "label_feature_psi", "label_flip"
    name: str  # what it is about: "" (the batch, its labels), a feature, a label
    note: str  # the sentence a human reads (the whole batch's is the one ingest records)

    def __str__(self) -> str:
        return self.note


@dataclass(frozen=True)
class ScreenResult:
    """What `screen_batch` decided about a batch."""

    findings: tuple[Finding, ...]
    action: str  # ACCEPT without findings, else the contract's `screening.action` (HOLD or REJECT)
    skipped: tuple[Skipped, ...]  # the screen's order: features, per-label, label_flip, labels

    @property
    def screened(self) -> bool:
        """False when the batch as a whole was not compared with the baseline (under `screening.min_rows`)."""
        return not any(s.check == SCREEN for s in self.skipped)


def screen_batch(batch: Profile, baseline: Profile, screening: Screening) -> ScreenResult:
    """The screen of one batch as ingest decides it (mlvault.contracts.gate), for ingest and for the producer's
    pre-flight alike: a batch under `screening.min_rows` is not compared (ingest screens it later, in its
    producer's rolling window); otherwise the findings against the baseline, with `screening`'s thresholds, and
    every check the comparison skipped, with why."""
    if batch.rows < screening.min_rows:
        note = f"not screened: {batch.rows} rows, fewer than min_rows {screening.min_rows}"
        return ScreenResult((), ACCEPT, (Skipped(SCREEN, "", note),))
    findings, skipped = _compare(batch, baseline, **_thresholds(screening))
    return ScreenResult(tuple(findings), screening.action if findings else ACCEPT, tuple(skipped))


def screen(batch: Profile, baseline: Profile, screening: Screening) -> list[Finding]:
    """`compare` with a contract's screening thresholds, whatever the batch's size (a rolling window's merged
    profile is screened this way; one batch: `screen_batch`)."""
    return compare(batch, baseline, **_thresholds(screening))


def _thresholds(screening: Screening) -> dict[str, float]:
    """A contract's screening thresholds, as compare takes them."""
    return {
        "feature_psi": screening.feature_psi,
        "label_psi": screening.label_psi,
        "parity_increase": screening.parity_increase,
        "label_flip": screening.label_flip,
    }


def compare(
    batch: Profile,
    baseline: Profile,
    *,
    feature_psi: float,
    label_psi: float,
    parity_increase: float,
    label_flip: float = Screening.label_flip,
) -> list[Finding]:
    """What makes the batch look poisoned against the baseline (empty when it does not)."""
    return _compare(
        batch,
        baseline,
        feature_psi=feature_psi,
        label_psi=label_psi,
        parity_increase=parity_increase,
        label_flip=label_flip,
    )[0]


def _compare(
    batch: Profile,
    baseline: Profile,
    *,
    feature_psi: float,
    label_psi: float,
    parity_increase: float,
    label_flip: float,
) -> tuple[list[Finding], list[Skipped]]:
    """`compare`'s findings, and the checks it skipped (each noted where it is skipped)."""
    findings: list[Finding] = []
    skipped: list[Skipped] = []

    def check(kind: str, name: str, value: float, threshold: float, noise: float) -> None:
        if value > threshold + noise:
            findings.append(Finding(kind, name, value, threshold, noise))

    def absent(kind: str, name: str, what: str) -> None:
        skipped.append(Skipped(kind, name, f"{kind} {name} skipped: the baseline has no {what} of {name}"))

    for name, counts in batch.numeric.items():
        if name not in baseline.numeric:
            absent("feature_psi", name, "profile")
            continue
        cuts = quantile_bins(baseline.numeric[name])
        value = psi(_regroup(baseline.numeric[name], cuts), _regroup(counts, cuts))
        check("feature_psi", name, value, feature_psi, sampling_noise(len(cuts) + 1, sum(counts), baseline.rows))
    for name, counts in batch.categorical.items():
        if name not in baseline.categorical:
            absent("feature_psi", name, "profile")
            continue
        keys = sorted(set(counts) | set(baseline.categorical[name]))
        value = psi([baseline.categorical[name][k] for k in keys], [counts[k] for k in keys])
        check("feature_psi", name, value, feature_psi, sampling_noise(len(keys), batch.rows, baseline.rows))
    small: dict[tuple[str, str], list[str]] = {}  # (label, why) -> the features whose per-label PSI it skipped
    for name, pairs in batch.conditional.items():
        if name not in baseline.conditional:
            absent("label_feature_psi", name, "per-label counts")
            continue
        left_out: list[tuple[str, int, int | None]] = []
        worst = _worst_conditional_psi(pairs, baseline.conditional[name], left_out)
        if worst is not None:
            check("label_feature_psi", f"{name}|{worst[0]}", worst[1], feature_psi, worst[2])
        for label, rows, reference in left_out:
            small.setdefault((label, _small_label(label, rows, reference)), []).append(name)
    for (label, why), names in sorted(small.items()):
        note = f"{why}: its label_feature_psi skipped ({', '.join(names)})"
        skipped.append(Skipped("label_feature_psi", label, note))
    findings += _flip_findings(batch, baseline, label_flip, skipped.append)
    if batch.label:
        keys = sorted(set(batch.label) | set(baseline.label))
        value = psi([baseline.label[k] for k in keys], [batch.label[k] for k in keys])
        check("label_psi", "label", value, label_psi, sampling_noise(len(keys), batch.rows, baseline.rows))
    elif baseline.label:  # the label column absent or all null: no label check can see anything
        note = "label_psi, label_feature_psi, label_flip and parity skipped: the batch has no labels"
        skipped.append(Skipped(LABELS, "", note))
    for attribute, groups in batch.groups.items():
        increase = parity_gap(groups) - parity_gap(baseline.groups[attribute])
        check("parity", attribute, increase, parity_increase, _parity_noise(groups))
    return findings, skipped


def _small_label(label: str, rows: int, reference: int | None) -> str:
    """Why a label's per-label checks were left out (MIN_CLASS_ROWS)."""
    if reference is None:
        return f"label {label} is not in the baseline"
    if rows < MIN_CLASS_ROWS and reference < MIN_CLASS_ROWS:
        return (
            f"label {label} has {rows} rows in the batch and {reference} in the baseline, fewer than {MIN_CLASS_ROWS}"
        )
    if rows < MIN_CLASS_ROWS:
        return f"label {label} has {rows} rows in the batch, fewer than {MIN_CLASS_ROWS}"
    return f"label {label} has {reference} rows in the baseline, fewer than {MIN_CLASS_ROWS}"


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
