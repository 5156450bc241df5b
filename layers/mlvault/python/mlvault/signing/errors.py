"""Verification fails closed: a specific error with a stable reason code, never a bool."""

from __future__ import annotations


class Reason:
    """Stable reason codes of rejected uploads (documented in docs/signing.md; never renamed)."""

    TOO_LARGE = "TOO_LARGE"
    SOURCE_MISSING = "SOURCE_MISSING"
    INVALID_OBJECT_KEY = "INVALID_OBJECT_KEY"
    MISSING_SIGNATURE = "MISSING_SIGNATURE"
    ENVELOPE_TOO_LARGE = "ENVELOPE_TOO_LARGE"
    MALFORMED_ENVELOPE = "MALFORMED_ENVELOPE"
    UNKNOWN_PRODUCER = "UNKNOWN_PRODUCER"
    UNKNOWN_KEY = "UNKNOWN_KEY"
    KEY_EXPIRED = "KEY_EXPIRED"
    KEY_REVOKED = "KEY_REVOKED"
    INVALID_SIGNATURE = "INVALID_SIGNATURE"
    MALFORMED_STATEMENT = "MALFORMED_STATEMENT"
    SUBJECT_MISMATCH = "SUBJECT_MISMATCH"
    PRODUCER_MISMATCH = "PRODUCER_MISMATCH"
    DATASET_MISMATCH = "DATASET_MISMATCH"
    DATASET_NOT_ALLOWED = "DATASET_NOT_ALLOWED"
    FUTURE_SIGNATURE = "FUTURE_SIGNATURE"
    STALE_SIGNATURE = "STALE_SIGNATURE"
    REPLAYED_SIGNATURE = "REPLAYED_SIGNATURE"
    SIZE_MISMATCH = "SIZE_MISMATCH"
    DIGEST_MISMATCH = "DIGEST_MISMATCH"
    LAKE_CONFLICT = "LAKE_CONFLICT"
    UNVERIFIED_TIMEOUT = "UNVERIFIED_TIMEOUT"


ALL_REASONS = tuple(v for k, v in vars(Reason).items() if k.isupper())


class VerificationError(Exception):
    """A permanent verdict: the upload is rejected with this reason code."""

    def __init__(self, reason: str, detail: str) -> None:
        if reason not in ALL_REASONS:
            raise ValueError(f"unknown reason code {reason!r}")
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class TransientError(Exception):
    """Could not reach a verdict now (throttling, a service error): retry, never reject."""
