"""Environment switches read in one place (private)."""
from __future__ import annotations

import os


def quick_mode() -> bool:
    """True when ``HMF_LAB_QUICK`` is set to anything but "", "0", "false", "no" or "off" (case-insensitive).

    Quick mode shrinks notebook, benchmark and CLI work so CI stays fast.
    """
    return os.environ.get("HMF_LAB_QUICK", "").strip().lower() not in ("", "0", "false", "no", "off")
