"""Training: the manifest of exact lake versions, the trainer, the compliance gates and the pipeline steps."""
