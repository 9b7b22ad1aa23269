"""One log line per event on stderr, stamped and named after the instance."""

from __future__ import annotations

import sys
import threading
from datetime import UTC, datetime

_log_lock = threading.Lock()
_log_name = "stub"


def set_instance_name(name):
    """Name the instance in every later line (``stub[NAME]``)."""
    global _log_name
    _log_name = name


def log(message):
    now = datetime.now(UTC)
    stamp = now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"
    line = f"{stamp} stub[{_log_name}] {message}\n"
    with _log_lock:
        try:
            sys.stderr.write(line)
            sys.stderr.flush()
        except (OSError, ValueError):
            pass
