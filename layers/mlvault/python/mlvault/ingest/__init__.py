"""Zero-trust ingest: from an upload notification to a verdict recorded in the ledger."""
