"""The signing protocol between data producers and mlvault (docs/signing.md): a DSSE envelope over an in-toto
Statement v1, carried in the object's user metadata."""
