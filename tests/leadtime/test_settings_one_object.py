"""One settings object: ``Settings`` reads ``leadtime.yaml`` once, and Tier 1's daily fit takes
its history, cut-offs and horizon (in seconds) from the file's ``tier1`` section."""

from __future__ import annotations

import pytest

from leadtime.config import ENGINE_DEFAULTS, TIER1_DEFAULTS, ConfigError
from leadtime.settings import Settings
from models.tier1.pipeline import config_from_settings

POOLS = "pools:\n  web:\n    producers: [{id: a, capacity_per_instance: 10}]\n"


def test_the_file_sections_reach_tier1_and_the_engine(tmp_path):
    path = tmp_path / "leadtime.yaml"
    path.write_text("engine:\n  violation_cost: 49\n"
                    "tier1:\n  history_s: 1209600\n  backtest_cutoffs: 2\n  horizon_s: 43200\n"
                    + POOLS)
    settings = Settings(home=tmp_path / "state", config_path=path)
    assert settings.leadtime is settings.leadtime  # read once
    assert settings.engine.violation_cost == 49.0
    backtest = config_from_settings(settings)
    assert (backtest.history_s, backtest.cutoffs, backtest.horizon_s) == (14 * 86400.0, 2, 43200.0)
    assert config_from_settings(settings, cutoffs=5).cutoffs == 5  # a flag wins


def test_no_file_is_the_embedded_defaults(tmp_path):
    settings = Settings(home=tmp_path / "state", config_path=tmp_path / "absent.yaml")
    assert settings.leadtime is None
    assert settings.engine == ENGINE_DEFAULTS and settings.tier1 == TIER1_DEFAULTS
    assert config_from_settings(settings).history_s == 28 * 86400.0


def test_a_bad_tier1_section_is_refused_with_its_place(tmp_path):
    path = tmp_path / "leadtime.yaml"
    path.write_text("tier1:\n  history_s: 3600\n  history_days: 28\n" + POOLS)
    with pytest.raises(ConfigError) as refused:
        _ = Settings(home=tmp_path / "state", config_path=path).tier1
    assert "tier1.history_s" in str(refused.value) and "tier1.history_days" in str(refused.value)
