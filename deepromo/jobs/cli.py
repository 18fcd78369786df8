"""Command-line helpers: deepromo's own errors (bad data, config, names, files) become one line and exit 2.

Any other exception is a bug and keeps its traceback; set DEEPROMO_DEBUG=1 for the traceback of user errors too.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading

from deepromo.data.errors import UserInputError

# OpenMP threads that busy-wait (the default) make scikit-learn's gradient boosting 30-50x slower whenever another
# process shares the cores (measured on 2 cores); the entry scripts import this module before any OpenMP library.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def terminate_as_interrupt(signum, frame):  # noqa: ARG001 - the signal handler signature
    """SIGTERM (a scheduler stopping the job) unwinds like Ctrl-C, so runs are marked KILLED and files cleaned."""
    raise KeyboardInterrupt(f"stopped by signal {signum}")


def main_guard(fn, *args, **kwargs):
    """Run ``fn``; a user error prints ``error: <message>`` and exits 2, an interrupt exits 130."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, terminate_as_interrupt)
    if os.environ.get("DEEPROMO_DEBUG"):
        return fn(*args, **kwargs)
    try:
        return fn(*args, **kwargs)
    except UserInputError as exc:
        logging.getLogger("deepromo").debug("user error", exc_info=True)
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt as exc:
        print(f"interrupted{f': {exc}' if str(exc) else ''}", file=sys.stderr)
        sys.exit(130)
