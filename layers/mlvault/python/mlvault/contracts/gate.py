"""The content gate of ingest: after the signature and the digest, a file's data contract, then the poisoning
screen against the dataset's baseline.

The baseline is the one the contract pins (`screening.baseline`, reviewed like code) or, without one, the
profile learned from the first accepted batches until it holds `screening.baseline_rows` rows; then it is
frozen, so that slow poisoning cannot drag it along. Batches that complete a learned baseline are not screened
(there is nothing to compare them with yet): pin a baseline where that matters.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from mlvault.contracts.schema import Contract
from mlvault.contracts.screen import Finding, Profile, ProfileBuilder, compare, load_baseline
from mlvault.contracts.validate import ValidationReport, resolve_contract, validate_file, validate_stream
from mlvault.errors import TransientError
from mlvault.ledger import LearnedBaseline, Ledger

ACCEPT, HOLD, REJECT = "accept", "hold", "reject"
_RACE_RETRIES = 10
SPOOL_CHUNK = 1 << 20


@dataclass(frozen=True)
class Inspection:
    contract: Contract
    report: ValidationReport
    profile: Profile
    findings: tuple[Finding, ...]
    baseline: str  # what the batch was compared with, for humans
    learning: bool  # no baseline yet: an accepted batch feeds the learned one

    @property
    def action(self) -> str:
        return self.contract.screening.action if self.findings else ACCEPT

    def summary(self) -> str:
        findings = "; ".join(map(str, self.findings)) or "no shift"
        return f"{findings} (baseline: {self.baseline})"


class ContentGate:
    def __init__(self, directory: Path, ledger: Ledger, spool_dir: str | None = None) -> None:
        self._dir = directory
        self._ledger = ledger
        self._spool_dir = spool_dir
        self._frozen: dict[tuple[str, str], tuple[Profile, str]] = {}

    def inspect(
        self, *, dataset: str, contract_version: str, size: int, open_body: Callable[[], BinaryIO]
    ) -> Inspection:
        """Validate the content (raises VerificationError with the contract's reason code) and screen it."""
        contract = resolve_contract(self._dir, dataset, contract_version)
        builder = ProfileBuilder(contract)
        body = open_body()
        try:
            if contract.format == "parquet":
                report = self._validate_spooled(body, contract, builder)
            else:
                report = validate_stream(body, contract, size=size, observe=builder.add)
        finally:
            body.close()
        baseline, described = self._baseline(contract)
        findings: tuple[Finding, ...] = ()
        if baseline is not None and report.rows < contract.screening.min_rows:
            described += f"; not screened: {report.rows} rows, fewer than min_rows {contract.screening.min_rows}"
        elif baseline is not None:
            s = contract.screening
            findings = tuple(
                compare(
                    builder.profile,
                    baseline,
                    feature_psi=s.feature_psi,
                    label_psi=s.label_psi,
                    parity_increase=s.parity_increase,
                )
            )
        return Inspection(contract, report, builder.profile, findings, described, learning=baseline is None)

    def _validate_spooled(self, body: BinaryIO, contract: Contract, builder: ProfileBuilder) -> ValidationReport:
        # Parquet's footer is at the end: spool the stream to local storage (never to memory), then read it.
        with tempfile.NamedTemporaryFile(dir=self._spool_dir, suffix=".parquet") as spool:
            shutil.copyfileobj(body, spool, SPOOL_CHUNK)
            spool.flush()
            return validate_file(spool.name, contract, builder.add)

    def _baseline(self, contract: Contract) -> tuple[Profile | None, str]:
        key = (contract.dataset, contract.version)
        if key in self._frozen:
            return self._frozen[key]
        s = contract.screening
        if s.baseline:
            self._frozen[key] = (load_baseline(self._dir, contract), f"pinned {s.baseline}")
            return self._frozen[key]
        learned = self._ledger.baseline(*key)
        if learned is not None and learned.complete:
            described = f"learned from {learned.rows} rows of {learned.batches} accepted batches"
            self._frozen[key] = (Profile.from_bytes(learned.profile), described)
            return self._frozen[key]
        rows = learned.rows if learned else 0
        return None, f"none yet: learning, {rows} of {s.baseline_rows} rows (not screened)"

    def learn(self, inspection: Inspection) -> None:
        """Add an accepted batch to its dataset's learned baseline (optimistic, retried on a race)."""
        contract = inspection.contract
        for _ in range(_RACE_RETRIES):
            learned = self._ledger.baseline(contract.dataset, contract.version)
            if learned is not None and learned.complete:
                return
            profile = inspection.profile
            if learned is not None:
                profile = Profile.from_bytes(learned.profile).merged(profile)
            grown = LearnedBaseline(
                profile=profile.to_bytes(),
                rows=profile.rows,
                batches=(learned.batches if learned else 0) + 1,
                complete=profile.rows >= contract.screening.baseline_rows,
            )
            if self._ledger.put_baseline(
                contract.dataset, contract.version, grown, after=learned.revision if learned else 0
            ):
                return
        raise TransientError(f"the {contract.dataset} baseline kept changing under {_RACE_RETRIES} updates")
