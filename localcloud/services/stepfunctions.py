"""Step Functions: execution (gap 7).

7. Step Functions. moto only executes definitions when configured to, and its Lambda tasks call
   localhost:MOTO_PORT. Here execution is on and MOTO_PORT is this server's port.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from localcloud.server import LocalCloud


def install(cloud: LocalCloud) -> None:
    from moto.core.config import default_user_config

    default_user_config.setdefault("stepfunctions", {})["execute_state_machine"] = True
    os.environ["MOTO_PORT"] = str(cloud.port)
