"""The refusals of `mlvault contract import` and `mlvault contract init` (light: the CLI registers them at start-up,
before any verb imports pyarrow or PyYAML)."""

from __future__ import annotations

from enum import StrEnum

from mlvault.errors import MlvaultError


class OdcsReason(StrEnum):
    """Why an ODCS document cannot become an mlvault contract (each names the element's path)."""

    NOT_ODCS = "NOT_ODCS"  # not YAML, not an ODCS document, or an element the standard does not define
    UNSUPPORTED_VERSION = "UNSUPPORTED_VERSION"  # an apiVersion other than the supported ones
    NO_TYPE_MAPPING = "NO_TYPE_MAPPING"  # a logical or physical type mlvault has no column type for
    NOT_ENFORCEABLE = "NOT_ENFORCEABLE"  # a rule or constraint mlvault cannot check, refused rather than dropped
    INVALID_CONTRACT = "INVALID_CONTRACT"  # mapped, but not a valid mlvault contract (parse_contract says why)


class OdcsError(MlvaultError):
    """An ODCS document refused by `mlvault contract import`: nothing is written."""

    reasons = (OdcsReason,)


class DraftReason(StrEnum):
    """Why a sample cannot be drafted into a contract (`mlvault contract init`)."""

    UNREADABLE_SAMPLE = "UNREADABLE_SAMPLE"  # not UTF-8, not CSV / Parquet / JSON Lines, a line over 1 MiB
    EMPTY_SAMPLE = "EMPTY_SAMPLE"  # no rows
    UNSUPPORTED_COLUMN = "UNSUPPORTED_COLUMN"  # a column no mlvault type holds (nested, mixed, another width)


class DraftError(MlvaultError):
    """A sample `mlvault contract init` cannot draft a contract from: nothing is written."""

    reasons = (DraftReason,)
