"""Command-line helpers: turn known bad-input errors into one clear line and exit code 2."""

from __future__ import annotations

import logging
import sys

from deepromo.data.batch import BatchValidationError
from deepromo.data.sources import UnknownSourceError
from deepromo.data.tables import DataValidationError
from deepromo.models.registry import UnknownModelError

USER_ERRORS = (DataValidationError, BatchValidationError, UnknownModelError, UnknownSourceError, TypeError, ValueError)


def main_guard(fn, *args, **kwargs):
    """Run ``fn``; a user error (bad data, config or name) prints ``error: <message>`` and exits 2.

    Set DEEPROMO_DEBUG=1 to get the full traceback instead.
    """
    import os

    if os.environ.get("DEEPROMO_DEBUG"):
        return fn(*args, **kwargs)
    try:
        return fn(*args, **kwargs)
    except USER_ERRORS as exc:
        logging.getLogger("deepromo").debug("user error", exc_info=True)
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
