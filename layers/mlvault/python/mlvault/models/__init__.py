"""Provenance-rich models: manifest -> train -> evaluate (gates) -> sign -> verify before serving (attest)."""
