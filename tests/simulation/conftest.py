"""Fixtures for the simulator tests (helpers live in ``sim_fixtures``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sim_fixtures import SHARED_DATA


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data folder {SHARED_DATA} is absent")
    return SHARED_DATA
