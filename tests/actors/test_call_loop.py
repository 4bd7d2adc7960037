"""CallLoop: the replica's one asyncio loop where every record runs."""

from __future__ import annotations

import gc
import warnings

import pytest

from datagems.actors.record import CallLoop


async def closing_a_client() -> None:
    return None


def test_work_handed_to_a_stopped_loop_is_refused_without_leaving_a_coroutine_unawaited():
    # a job actor's cleanup may hand its client's aclose() to the loop after the engine
    # stopped it: the caller learns (RuntimeError) and nothing warns at garbage collection
    calls = CallLoop().start()
    calls.stop()
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with pytest.raises(RuntimeError):
            calls.submit(closing_a_client())
        gc.collect()
    assert [str(w.message) for w in seen if issubclass(w.category, RuntimeWarning)] == []


def test_a_running_loop_runs_what_it_is_handed():
    calls = CallLoop().start()
    try:
        assert calls.submit(closing_a_client()).result(timeout=10) is None
        assert calls.ping() == "pong"
    finally:
        calls.stop()
