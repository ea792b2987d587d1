"""Workers of one process share the freeze of the startup heap."""

from __future__ import annotations

import gc

from crm_api.platform.heap import startup_heap_frozen


def test_the_heap_stays_frozen_until_the_last_worker_of_the_process_stops() -> None:
    assert gc.get_freeze_count() == 0
    first, second = startup_heap_frozen(), startup_heap_frozen()
    first.__enter__()
    assert gc.get_freeze_count() > 0
    second.__enter__()
    first.__exit__(None, None, None)  # the first SMS bind stops; the second still runs
    # (Not the same count: frozen objects that die meanwhile leave it.)
    assert gc.get_freeze_count() > 0
    second.__exit__(None, None, None)
    assert gc.get_freeze_count() == 0
