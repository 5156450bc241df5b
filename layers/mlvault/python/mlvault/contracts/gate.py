"""The content gate of ingest: after the signature and the digest, a file's data contract, then the poisoning
screen against the dataset's baseline.

The baseline is the one the contract pins (`screening.baseline`, reviewed like code) or, without one, the
profile learned from the first accepted batches until it holds `screening.baseline_rows` rows; then it is
frozen, so that slow poisoning cannot drag it along. Batches that complete a learned baseline are not screened
(there is nothing to compare them with yet): pin a baseline where that matters.

The rolling screen: a batch under `screening.min_rows` is too small to be screened alone. Given the producer (and
the batch's "key#version"), the gate adds it to that producer's window of small batches for the dataset version
(a ledger item, conditional writes: concurrent verifications cannot lose a batch), and once the window holds
`min_rows` rows (or MAX_WINDOW_BATCHES batches) screens the window's merged profile against the baseline. The
batch that completes a flagged window is held (or rejected, as the contract says), its summary naming the
window's batches (the earlier ones were accepted when they came, and stay so: a reviewer decides about them);
then a new window starts. Each small batch's record says which window it is in.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from mlvault.contracts.schema import Contract, resolve_contract
from mlvault.contracts.screen import (
    ACCEPT,
    SCREEN,
    Finding,
    Profile,
    ProfileBuilder,
    load_baseline,
    screen,
    screen_batch,
)
from mlvault.contracts.validate import ValidationReport, validate_file, validate_stream
from mlvault.errors import TransientError
from mlvault.ledger import LearnedBaseline, Ledger, SmallBatches

_RACE_RETRIES = 10
SPOOL_CHUNK = 1 << 20
MAX_WINDOW_BATCHES = 100  # a window of small batches is screened at min_rows rows or this many batches (item size)


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
        self,
        *,
        dataset: str,
        contract_version: str,
        size: int,
        open_body: Callable[[], BinaryIO],
        producer: str | None = None,
        source: str | None = None,
    ) -> Inspection:
        """Validate the content (raises VerificationError with the contract's reason code) and screen it. With
        the producer and the batch's "key#version", a batch under min_rows joins the producer's rolling window
        (module docstring); without them it is accepted unscreened. Identical bytes under another name count
        again: the manifest trains on each accepted object, so repeated poison must add up here too."""
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
        if baseline is not None:
            # the one screen of a batch, the producer's pre-flight's too: under min_rows it says "not screened: ..."
            screened = screen_batch(builder.profile, baseline, contract.screening)
            findings = screened.findings
            if not screened.screened:
                described += "; " + "; ".join(s.note for s in screened.skipped if s.check == SCREEN)
                if producer and source:
                    findings, window = self._rolling(contract, producer, source, builder.profile, baseline)
                    described += f"; {window}"
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

    def _rolling(
        self, contract: Contract, producer: str, source: str, profile: Profile, baseline: Profile
    ) -> tuple[tuple[Finding, ...], str]:
        """Add a small batch to its producer's window; screen the window once it is full (optimistic, retried on
        a race). Returns the findings (of the window, when this batch completes it) and what happened."""
        key = (contract.dataset, contract.version, producer)
        min_rows = contract.screening.min_rows
        for _ in range(_RACE_RETRIES):
            current = self._ledger.small_batches(*key) or SmallBatches(number=1, batches=(), rows=0, profile=b"")
            last = json.loads(current.last) if current.last else None
            if last is not None and source in last["batches"]:  # a retry, after its window was screened
                findings = tuple(map(Finding.from_json, last["findings"])) if last["closed_by"] == source else ()
                return findings, _window_text(producer, last, closed=last["closed_by"] == source)
            if source in current.batches:  # a retry: already in the window
                return (
                    (),
                    f"in rolling window {current.number} of producer {producer}: {current.rows} of {min_rows} rows",
                )
            merged = Profile.from_bytes(current.profile).merged(profile) if current.profile else profile
            batches = (*current.batches, source)
            if merged.rows < min_rows and len(batches) < MAX_WINDOW_BATCHES:
                grown = SmallBatches(current.number, batches, merged.rows, merged.to_bytes(), current.last)
                if self._ledger.put_small_batches(*key, grown, after=current.revision):
                    return (), (
                        f"in rolling window {current.number} of producer {producer}: {merged.rows} of {min_rows} rows "
                        f"in {len(batches)} batches"
                    )
                continue
            findings = tuple(screen(merged, baseline, contract.screening))
            closed = {
                "number": current.number,
                "batches": list(batches),
                "rows": merged.rows,
                "closed_by": source,
                "findings": [f.to_json() for f in findings],
            }
            fresh = SmallBatches(current.number + 1, (), 0, b"", json.dumps(closed, separators=(",", ":")))
            if self._ledger.put_small_batches(*key, fresh, after=current.revision):
                return findings, _window_text(producer, closed, closed=True)
        raise TransientError(f"the {contract.dataset} window of {producer} kept changing under {_RACE_RETRIES} updates")

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


def _window_text(producer: str, window: dict, *, closed: bool) -> str:
    if not closed:
        return f"in rolling window {window['number']} of producer {producer}, screened with it"
    outcome = "flagged" if window["findings"] else "no shift"
    return (
        f"completes rolling window {window['number']} of producer {producer}, screened as one batch of "
        f"{window['rows']} rows ({outcome}); its {len(window['batches'])} batches: {', '.join(window['batches'])}"
    )
