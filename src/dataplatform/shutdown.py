"""Ending a process once its work is done, without native libraries' exit-time teardown.

pyarrow's dataset scanner (behind delta-rs's `to_pyarrow_table` and PySpark's Arrow paths)
leaves C++ threads that can abort the interpreter while it shuts down: "terminate called
without an active exception", SIGABRT, exit code 134, after everything succeeded (measured
here: 3 of 5 runs of a delta-rs read; see apache/arrow#34314). A job or command that ended
that way would be reported as failed and retried by Airflow (seen in CI). So the job entry
points and the `dataplatform` console script flush and leave with `os._exit`.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from types import FrameType
from typing import NoReturn


def exit_code_of(exc: SystemExit) -> int:
    """The process exit code `sys.exit(value)` would give, printing a message as it would."""
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code
    print(exc.code, file=sys.stderr)  # noqa: T201 - what the interpreter itself would print
    return 1


def exit_now(code: int) -> NoReturn:
    """Flush logs and standard streams, then end the process with `code`.

    Call it only when every write the process made is committed: no `finally` block, `atexit`
    hook or destructor runs after it (the JVM of a PySpark driver notices its Python side is
    gone and stops by itself).
    """
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def stop_on_signals(log: logging.Logger, what: str) -> threading.Event:
    """An event set by SIGTERM or SIGINT, for a loop that finishes its step and stops.

    Args:
        log: Where the signal is logged.
        what: What stopping means for this process, logged with the signal.
    """
    stop = threading.Event()

    def _stop(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %d: %s", signum, what)
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    return stop
