"""Child processes that never outlive their parent."""

from __future__ import annotations

import ctypes
import signal
import sys

PR_SET_PDEATHSIG = 1  # from <sys/prctl.h>


def die_with_parent() -> None:
    """In the child, before exec: ask Linux to SIGTERM it when the parent dies, even by SIGKILL.

    Docket's children (the Temporal dev server, the worker, the API, llama-server) would otherwise be orphaned by a
    parent that is killed outright, and an orphaned server keeps holding its port.
    """
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
