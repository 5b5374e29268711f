"""Ctrl-C / SIGTERM turn into a polite stop: the loop finishes its step, checkpoints, exits.

A second signal falls back to the default behaviour so a stuck run can still be killed.
"""

import contextlib
import signal
import threading
from typing import Iterator


class StopRequest:
    """Set by SIGINT/SIGTERM while installed; the training loop polls `requested`."""

    def __init__(self):
        self.requested = False
        self.signal_name = ""
        self.signal_number = 0

    def _handle(self, signum, frame):
        self.requested = True
        self.signal_name = signal.Signals(signum).name
        self.signal_number = signum
        signal.signal(signum, signal.SIG_DFL if signum != signal.SIGINT else signal.default_int_handler)

    @contextlib.contextmanager
    def installed(self) -> Iterator["StopRequest"]:
        if threading.current_thread() is not threading.main_thread():
            yield self  # signal handlers can only be installed from the main thread
            return
        previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
        for sig in previous:
            signal.signal(sig, self._handle)
        try:
            yield self
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
