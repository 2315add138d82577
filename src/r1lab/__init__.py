"""r1lab: the DeepSeek-V3 architecture and the DeepSeek-R1 reasoning-training recipe, end to end."""

import os

# OpenMP threads that spin while waiting stall for seconds whenever another process holds a core: on the
# 2-core machine a tiny-model step went from 0.48 s to 9.9 s with one other busy process. Passive waiting
# costs almost nothing on an idle machine. It must be set before torch loads OpenMP, so it lives here,
# ahead of every torch import in the package (and the `r1lab` command).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
