"""``bench autoscale`` with several producers in worker processes scores exactly as serially."""

from __future__ import annotations

import numpy as np


def test_producers_in_two_processes_score_as_one_after_another(tmp_path):
    from simulation.bench import run_bench
    from simulation.generate import write_load_trace

    trace = write_load_trace(tmp_path / "load.csv", producers=3, days=3, interval="15min")
    ticks: list[str] = []
    serial = run_bench(trace, model="seasonal_naive", history_s=2 * 86400.0, workers=1)
    parallel = run_bench(trace, model="seasonal_naive", history_s=2 * 86400.0, workers=2,
                         progress=ticks.append)
    assert list(parallel.producers) == list(serial.producers) == ["svc-1", "svc-2", "svc-3"]
    for name, result in serial.producers.items():
        assert parallel.producers[name].metrics == result.metrics
        # the daily fits the replay asked stay in the worker; their schedule comes back
        assert result.tier1.published and not parallel.producers[name].tier1.published
        assert np.array_equal(parallel.producers[name].tier1.window, result.tier1.window,
                              equal_nan=True)
    assert parallel.policies == serial.policies
    assert {t.split(":")[0] for t in ticks} == {"svc-1", "svc-2", "svc-3"}  # progress per producer
