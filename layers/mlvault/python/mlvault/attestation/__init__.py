"""Model signatures in the OpenSSF model-signing format: signing and the fail-closed verifier."""
