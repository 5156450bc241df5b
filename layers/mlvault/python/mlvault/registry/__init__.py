"""The model registry: every run, every registered model (schema-validated, hashed records), deployment locks."""
