"""moto's services as the local cloud patches them: one module per AWS service whose gaps it closes, each with
an `install(cloud)` that applies them to the moto backends of this process (the index is localcloud/gaps.py)."""
