"""What runs inside a SageMaker training job before the team's code (mlvault_job.py: standard library only), and
the deterministic source asset that carries it (source_asset.py)."""
