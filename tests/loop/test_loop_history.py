"""The loop's record for recalibration keeps rows of floats and reads them back as they came."""

from __future__ import annotations

import pytest

from loop.decision_loop import _History


def test_points_come_back_in_decision_order_with_each_decisions_tiers_in_answer_order():
    history = _History()
    history.remember(0.0, "a", 300.0, {"tier3": 5.0, "tier1": 4.0})
    history.remember(0.0, "b", 600.0, {"tier1": 7.5})
    history.remember(60.0, "a", 300.0, {"tier1": 4.5, "tier2": 1.0, "tier3": 5.5})
    assert history.points(0.0) == [
        (0.0, "a", 300.0, "tier3", 5.0), (0.0, "a", 300.0, "tier1", 4.0),
        (0.0, "b", 600.0, "tier1", 7.5),
        (60.0, "a", 300.0, "tier1", 4.5), (60.0, "a", 300.0, "tier2", 1.0),
        (60.0, "a", 300.0, "tier3", 5.5)]
    assert [p[0] for p in history.points(30.0)] == [60.0] * 3  # from ``since`` on
    history.decisions.popleft()  # what ages out leaves from the front
    assert history.points(0.0)[0][1] == "b"
    with pytest.raises(ValueError, match="keeps 3"):
        history.remember(120.0, "a", 300.0, {f"tier{i}": 1.0 for i in range(4)})
