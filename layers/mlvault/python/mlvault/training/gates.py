"""Compliance gates of a trained model, from configuration: each gate has a value, a threshold and a verdict, and
the model passes only if every gate does (a gate that cannot be measured fails, with the reason). mlvault measures
every one itself, on the held-out split it kept (the training code never sees it); what the training code says of
itself (the descriptor's `claims`) is recorded beside the gates, never used as one.

The held-out rows are streamed, batch by batch, through the model (mlvault.training.evaluation runs the package's
ONNX graph with onnxruntime): `HeldoutTally.add` keeps counts only (hits, rows per group, predictions per group
and class), so a million held-out rows cost what a thousand do. `evaluate` turns the tally and the measurements
into the report.

Gates (names are the `Gates` fields that set their thresholds):

- `inputs_accepted`: the model was trained on this manifest (the digest the train or collect step recorded), and
  every ingest version behind every manifest entry is still ACCEPTED in the ledger with the same SHA-256 and lake
  version (re-read now, consistently): data released, re-judged or tampered with after training fails the model.
  Value: the number of offending ingest versions; threshold 0.
- `min_accuracy`: the share of held-out rows whose predicted class equals their label (compared as strings).
- `max_parity_difference` and `min_disparate_impact`: fairness of the predictions on held-out rows, defined
  below.
- `max_artifact_bytes`: the size of the model package (the tar).
- `max_predict_ms_p95`: the 95th percentile (nearest rank) of the wall time of `latency_samples` one-row
  predictions over held-out rows (cycled), in milliseconds.
- `max_predict_memory_bytes`: the peak memory of one prediction of `memory_batch_rows` held-out rows, above what
  the process held before (the peak resident set, onnxruntime's own allocations included).

Fairness. Let A be a protected attribute of the contract, G its groups (its values among the held-out rows,
a null being the group "<null>"), and for a group g, n_g its held-out rows. A "favourable prediction" is a predicted
class in `favourable`; with `favourable` empty every class counts as one (multi-class data rarely has a single
favourable outcome, so each class is audited). For a class c, the selection rate of g is
    r(g, c) = |{rows of g predicted c}| / n_g,
over the groups with n_g >= min_group_rows (smaller groups are listed in the report, not compared). Then
    statistical parity difference  SPD(A, c) = max_g r(g, c) - min_g r(g, c)           (0 is parity)
    disparate impact               DI(A, c)  = min_g r(g, c) / max_g r(g, c)           (1 is parity; 1 if max is 0)
and the gates take the worst case over attributes and classes: parity difference = max_{A,c} SPD(A, c), checked
<= max_parity_difference; disparate impact = min_{A,c} DI(A, c), checked >= min_disparate_impact (0.8 is the
"four-fifths rule"). An attribute with fewer than two comparable groups cannot be measured: both gates fail.
A contract without protected attributes passes them with a detail saying so.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from typing import Any, Protocol

from mlvault.canonical import canonical_json, versioned_uri
from mlvault.contracts.schema import Contract
from mlvault.errors import GatesFailed
from mlvault.ledger import STATUS_ACCEPTED, LedgerRecord
from mlvault.training.manifest import Manifest

NULL_GROUP = "<null>"
SHOWN = 5


@dataclass(frozen=True)
class Gates:
    min_accuracy: float = 0.9
    max_parity_difference: float = 0.1
    min_disparate_impact: float = 0.8
    max_artifact_bytes: int = 1024 * 1024
    max_predict_ms_p95: float = 50.0
    max_predict_memory_bytes: int = 16 * 1024 * 1024
    latency_samples: int = 200
    memory_batch_rows: int = 1000
    min_group_rows: int = 30
    favourable: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in ("min_accuracy", "max_parity_difference", "min_disparate_impact"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
                raise ValueError(f"gates: {name} must be a number in [0, 1], got {value!r}")
        if isinstance(self.max_predict_ms_p95, bool) or not (
            isinstance(self.max_predict_ms_p95, int | float) and self.max_predict_ms_p95 >= 0
        ):
            raise ValueError(
                f"gates: max_predict_ms_p95 must be a non-negative number, got {self.max_predict_ms_p95!r}"
            )
        for name in ("max_artifact_bytes", "max_predict_memory_bytes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"gates: {name} must be a non-negative integer, got {value!r}")
        for name in ("latency_samples", "memory_batch_rows", "min_group_rows"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"gates: {name} must be a positive integer, got {value!r}")
        if not all(isinstance(c, str) for c in self.favourable):
            raise ValueError(f"gates: favourable must be a list of class names, got {self.favourable!r}")

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Gates:
        """From a configuration mapping (cdk.json context, a settings file): unknown names are refused."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(config) - known)
        if unknown:
            raise ValueError(f"gates: unknown setting(s) {unknown}; known: {sorted(known)}")
        values = dict(config)
        if "favourable" in values:
            if isinstance(values["favourable"], str) or not isinstance(values["favourable"], list | tuple):
                raise ValueError(f"gates: favourable must be a list of class names, got {values['favourable']!r}")
            values["favourable"] = tuple(values["favourable"])
        return cls(**values)

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "favourable": list(self.favourable)}


class LedgerReader(Protocol):
    """What the gates read from the ledger (mlvault.ledger.Ledger is one)."""

    def get(self, bucket: str, key: str, version_id: str) -> LedgerRecord | None: ...


@dataclass(frozen=True)
class GateResult:
    name: str
    value: float | None  # None: could not be measured (the gate fails)
    threshold: float
    passed: bool
    detail: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class GateReport:
    passed: bool
    results: tuple[GateResult, ...]
    artifact_digest: str
    manifest_digest: str | None
    heldout_rows: int
    fairness: dict[str, Any]  # attribute -> group -> {"rows": n, "rates": {class: rate}}
    gates: Gates
    evaluated_at: str
    claims: dict[str, Any] = field(default_factory=dict)  # what the training code says of itself: never a gate

    @property
    def failures(self) -> tuple[str, ...]:
        return tuple(r.name for r in self.results if not r.passed)

    def result(self, name: str) -> GateResult:
        return next(r for r in self.results if r.name == name)

    def check(self) -> GateReport:
        """The report if the model passed every gate; otherwise GatesFailed naming each failed gate's detail."""
        if not self.passed:
            failed = [r for r in self.results if not r.passed]
            raise GatesFailed("; ".join(f"{r.name}: {r.detail}" for r in failed), self.failures)
        return self

    def to_json(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "results": [r.to_json() for r in self.results],
            "artifact_digest": self.artifact_digest,
            "manifest_digest": self.manifest_digest,
            "heldout_rows": self.heldout_rows,
            "fairness": self.fairness,
            "gates": self.gates.to_json(),
            "evaluated_at": self.evaluated_at,
            "claims": self.claims,
        }

    def to_bytes(self) -> bytes:
        return canonical_json(self.to_json())


class HeldoutTally:
    """What the gates need of the held-out predictions, accumulated batch by batch (counts only)."""

    def __init__(self, classes: Sequence[str], protected: Sequence[str]) -> None:
        self.classes = tuple(classes)
        self.protected = tuple(protected)
        self.rows = 0
        self.hits = 0
        self.sizes: dict[str, Counter] = {a: Counter() for a in self.protected}
        self.chosen: dict[str, Counter] = {a: Counter() for a in self.protected}

    def add(
        self, labels: Sequence[Any], predictions: Sequence[str], groups: Mapping[str, Sequence[Any]] | None = None
    ) -> None:
        """One batch: the rows' labels, the model's predictions, and each protected attribute's values."""
        labels = [None if v is None else str(v) for v in labels]
        if len(labels) != len(predictions):
            raise ValueError(f"{len(labels)} labels for {len(predictions)} predictions")
        self.rows += len(labels)
        self.hits += sum(map(str.__eq__, predictions, (v if v is not None else "\x00" for v in labels)))
        for attribute in self.protected:
            values = [_group(v) for v in (groups or {})[attribute]]
            self.sizes[attribute].update(values)
            self.chosen[attribute].update(zip(values, predictions, strict=True))


def evaluate(
    tally: HeldoutTally,
    contract: Contract,
    gates: Gates,
    *,
    artifact_bytes: int,
    latency_ms: Sequence[float],
    memory_bytes: int | None,
    inputs: GateResult,
    artifact_digest: str,
    manifest_digest: str | None,
    claims: Mapping[str, Any] | None = None,
    memory_detail: str = "",
) -> GateReport:
    """Every gate, from the held-out tally and mlvault's own measurements (module docstring). Never raises for a
    failed gate: the report says which failed and why (`report.check()` raises GatesFailed)."""
    fairness = _fairness(tally, contract, gates)
    results = (
        inputs,
        _accuracy(tally, gates),
        *fairness.results,
        _gate(
            "max_artifact_bytes",
            artifact_bytes,
            gates.max_artifact_bytes,
            artifact_bytes <= gates.max_artifact_bytes,
            f"{artifact_bytes} bytes, at most {gates.max_artifact_bytes}",
        ),
        _latency(latency_ms, gates),
        _memory(memory_bytes, gates, memory_detail),
    )
    return GateReport(
        passed=all(r.passed for r in results),
        results=results,
        artifact_digest=artifact_digest,
        manifest_digest=manifest_digest,
        heldout_rows=tally.rows,
        fairness=fairness.groups,
        gates=gates,
        evaluated_at=datetime.now(UTC).isoformat(timespec="milliseconds"),
        claims=dict(claims or {}),
    )


def _gate(name: str, value: float | None, threshold: float, passed: bool, detail: str) -> GateResult:
    return GateResult(name=name, value=value, threshold=threshold, passed=passed, detail=detail)


def inputs_accepted(
    *,
    trained_on: str | None,
    trained_for: tuple[str, str],
    contract: Contract,
    manifest: Manifest | None,
    ledger: LedgerReader | None,
) -> GateResult:
    """The `inputs_accepted` gate: `trained_on` is the manifest digest the training step recorded, `trained_for`
    the (dataset, contract version) of the model's descriptor."""
    name = "inputs_accepted"
    if manifest is None or ledger is None:
        return _gate(name, None, 0, False, "not checked: evaluate needs the training manifest and the ledger")
    if trained_on != manifest.digest:
        return _gate(name, None, 0, False, f"the model was trained on manifest {trained_on}, not {manifest.digest}")
    if trained_for != (contract.dataset, contract.version):
        return _gate(
            name,
            None,
            0,
            False,
            f"the model is for {trained_for[0]} v{trained_for[1]}, the contract is "
            f"{contract.dataset} v{contract.version}",
        )
    problems = []
    checked = 0
    for entry in manifest.entries:
        for ref in entry.ingest:
            checked += 1
            where = versioned_uri(ref.bucket, ref.key, ref.version_id)
            record = ledger.get(ref.bucket, ref.key, ref.version_id)
            if record is None:
                problems.append(f"{where} has no ledger record")
            elif record.status != STATUS_ACCEPTED:
                problems.append(f"{where} is {record.status}, not {STATUS_ACCEPTED}")
            elif (
                record.attributes.get("sha256"),
                record.attributes.get("lake_key"),
                record.attributes.get("lake_version"),
            ) != (entry.sha256, entry.lake_key, entry.lake_version):
                problems.append(f"{where}: the ledger now records other bytes than {entry.uri} (sha256 {entry.sha256})")
    if problems:
        shown = "; ".join(problems[:SHOWN]) + (f"; and {len(problems) - SHOWN} more" if len(problems) > SHOWN else "")
        return _gate(name, len(problems), 0, False, f"{len(problems)} of {checked} ingest version(s): {shown}")
    return _gate(name, 0, 0, True, f"all {checked} ingest version(s) of {len(manifest.entries)} object(s) ACCEPTED")


def _accuracy(tally: HeldoutTally, gates: Gates) -> GateResult:
    if not tally.rows:
        return _gate("min_accuracy", None, gates.min_accuracy, False, "no held-out rows to measure accuracy on")
    value = tally.hits / tally.rows
    relation = ">=" if value >= gates.min_accuracy else "<"
    return _gate(
        "min_accuracy",
        value,
        gates.min_accuracy,
        value >= gates.min_accuracy,
        f"accuracy {value:.4f} ({tally.hits}/{tally.rows} held-out rows) {relation} {gates.min_accuracy}",
    )


@dataclass(frozen=True)
class _Fairness:
    results: tuple[GateResult, GateResult]
    groups: dict[str, Any]


def _fairness(tally: HeldoutTally, contract: Contract, gates: Gates) -> _Fairness:
    parity, impact = "max_parity_difference", "min_disparate_impact"
    attributes = contract.protected_attributes
    if not attributes:
        detail = f"contract {contract.dataset} declares no protected attributes"
        return _Fairness(
            (
                _gate(parity, 0.0, gates.max_parity_difference, True, detail),
                _gate(impact, 1.0, gates.min_disparate_impact, True, detail),
            ),
            {},
        )
    unknown = [c for c in gates.favourable if c not in tally.classes]
    classes = gates.favourable or tally.classes
    groups: dict[str, Any] = {}
    worst_spd: tuple[float, str] | None = None
    worst_di: tuple[float, str] | None = None
    unmeasurable = []
    for attribute in attributes:
        sizes = tally.sizes.get(attribute, Counter())
        chosen = tally.chosen.get(attribute, Counter())
        groups[attribute] = {
            g: {"rows": n, "rates": {c: chosen[g, c] / n for c in classes}, "compared": n >= gates.min_group_rows}
            for g, n in sorted(sizes.items())
        }
        compared = sorted(g for g, n in sizes.items() if n >= gates.min_group_rows)
        if len(compared) < 2:
            unmeasurable.append(
                f"{attribute}: {len(compared)} group(s) with >= {gates.min_group_rows} held-out rows "
                f"(groups: {dict(sorted(sizes.items()))})"
            )
            continue
        for c in classes:
            rates = {g: chosen[g, c] / sizes[g] for g in compared}
            high = max(compared, key=lambda g: (rates[g], g))
            low = min(compared, key=lambda g: (rates[g], g))
            spd = rates[high] - rates[low]
            di = 1.0 if rates[high] == 0 else rates[low] / rates[high]
            where = (
                f"{attribute}: P(predict {c} | {high}) = {rates[high]:.4f} vs P(predict {c} | {low}) = {rates[low]:.4f}"
            )
            if worst_spd is None or spd > worst_spd[0]:
                worst_spd = (spd, where)
            if worst_di is None or di < worst_di[0]:
                worst_di = (di, where)
    if unknown or unmeasurable:
        reason = (
            f"favourable class(es) {unknown} are not among the model's classes {list(tally.classes)}"
            if unknown
            else "cannot measure: " + "; ".join(unmeasurable)
        )
        return _Fairness(
            (
                _gate(parity, None, gates.max_parity_difference, False, reason),
                _gate(impact, None, gates.min_disparate_impact, False, reason),
            ),
            groups,
        )
    spd, spd_where = worst_spd
    di, di_where = worst_di
    return _Fairness(
        (
            _gate(
                parity,
                spd,
                gates.max_parity_difference,
                spd <= gates.max_parity_difference,
                f"statistical parity difference {spd:.4f} {'<=' if spd <= gates.max_parity_difference else '>'} "
                f"{gates.max_parity_difference} (worst: {spd_where})",
            ),
            _gate(
                impact,
                di,
                gates.min_disparate_impact,
                di >= gates.min_disparate_impact,
                f"disparate impact {di:.4f} {'>=' if di >= gates.min_disparate_impact else '<'} "
                f"{gates.min_disparate_impact} (worst: {di_where})",
            ),
        ),
        groups,
    )


def _group(value: Any) -> str:
    return NULL_GROUP if value is None else str(value)


def percentile(values: Iterable[float], share: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[math.ceil(share * len(ordered)) - 1]


def _latency(took: Sequence[float], gates: Gates) -> GateResult:
    name = "max_predict_ms_p95"
    if not took:
        return _gate(name, None, gates.max_predict_ms_p95, False, "no held-out rows to time predictions on")
    p95, p50 = percentile(took, 0.95), percentile(took, 0.5)
    passed = p95 <= gates.max_predict_ms_p95
    return _gate(
        name,
        p95,
        gates.max_predict_ms_p95,
        passed,
        f"p95 {p95:.3f} ms (p50 {p50:.3f} ms) over {len(took)} one-row predictions "
        f"{'<=' if passed else '>'} {gates.max_predict_ms_p95} ms",
    )


def _memory(peak: int | None, gates: Gates, detail: str) -> GateResult:
    name = "max_predict_memory_bytes"
    if peak is None:
        return _gate(name, None, gates.max_predict_memory_bytes, False, detail or "not measured")
    passed = peak <= gates.max_predict_memory_bytes
    return _gate(
        name,
        peak,
        gates.max_predict_memory_bytes,
        passed,
        f"peak {peak} bytes {detail} {'<=' if passed else '>'} {gates.max_predict_memory_bytes}".replace("  ", " "),
    )
