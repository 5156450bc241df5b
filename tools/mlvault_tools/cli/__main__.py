"""`python -m mlvault_tools.cli`: the `mlvault` command."""

import sys

from mlvault_tools.cli import main

sys.exit(main())
