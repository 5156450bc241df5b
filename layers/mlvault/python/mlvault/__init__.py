"""mlvault: the shared library of the mlvault pipeline (shipped to Lambda as a layer)."""

__version__ = "0.1.0"
