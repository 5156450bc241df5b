"""Serving: runtime attestation of the pinned model before any prediction, and drift windows."""
