"""Serve until Ctrl-C or SIGTERM: shared by `ampbench sim serve` and `ampbench proxy`."""

from __future__ import annotations

import signal
import threading
from types import FrameType


def wait_until_stopped() -> None:
    """Block until SIGINT or SIGTERM arrives, then return (no KeyboardInterrupt escapes)."""
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    # Signal handlers can only be installed from the main thread; elsewhere Ctrl-C is not ours anyway.
    in_main = threading.current_thread() is threading.main_thread()
    previous = (
        {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)} if in_main else {}
    )
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
