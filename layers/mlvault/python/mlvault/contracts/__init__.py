"""Data contracts as code: one reviewed file per dataset under contracts/, and streaming validation of files
against them with pyarrow (GUIDE.md sections 3 and 6)."""
