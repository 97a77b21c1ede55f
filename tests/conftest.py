"""Shared fixtures: a private state folder per test and the path to the shared real traces."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    """The shared real traces beside the project root; skip cleanly when they are absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared traces not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture
def state(tmp_path, monkeypatch):
    """Embedded-default settings whose state (MLflow SQLite store, plots) lives in tmp_path."""
    from leadtime.settings import get_settings

    home = tmp_path / "state"
    monkeypatch.setenv("LEADTIME_HOME", str(home))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{home / 'mlflow.db'}")
    get_settings.cache_clear()
    yield get_settings().prepare()
    get_settings.cache_clear()
