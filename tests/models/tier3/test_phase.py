"""Tier 3's phase samples: the window peaks at this phase of each period, cycle by cycle."""

from __future__ import annotations

import numpy as np

from models.tier3.nowcast import LoadNowcast, NowcastConfig
from simulation.scenarios import intermittent_bursts


def test_a_slot_that_fires_in_a_third_of_cycles_shows_at_a_high_quantile_only():
    series = intermittent_bursts(days=3)
    nowcast = LoadNowcast(NowcastConfig(lead_s=300.0))
    before_slot, between = [], []
    for at, value in series.items():
        t = at.timestamp() + 60.0  # a sample is known at the end of its minute
        nowcast.update(t, float(value))
        minute = (at.minute + 1) % 30
        if at.day >= 6 and 9 <= at.hour < 19 and minute in (25, 12):  # the third day, daytime
            samples = nowcast.phase_samples()
            assert samples, "a period and a day of cycles are known"
            (before_slot if minute == 25 else between).append(
                max(np.quantile(s, 0.9) / np.median(s) for s in samples))
    assert nowcast.period_s in (1800.0, 3600.0)  # the slot grid (or twice it), from the stream
    assert np.median(before_slot) > 2.0  # the burst shows above its median before the slot
    assert np.median(between) < 1.5  # and not between slots
