"""The heap a process built before a busy worker started, kept out of the garbage collector
while the worker runs."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

_holders = 0  # workers of this process running with the heap frozen


@contextlib.contextmanager
def startup_heap_frozen() -> Iterator[None]:
    """Objects that outlive the young generations (messages in flight) bring a full
    collection every second or two, and walking what was built before the worker
    (modules, mappers, models) is most of its cost: frozen, that is skipped. The workers
    of one process share one freeze, which ends with the last of them."""
    global _holders
    if _holders == 0:
        gc.freeze()
    _holders += 1
    try:
        yield
    finally:
        _holders -= 1
        if _holders == 0:
            gc.unfreeze()
