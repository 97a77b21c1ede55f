"""`leadtime bench anomaly`: window F1 and NAB scores, with NAB's published detectors beneath.

The shared-NAB tests (slow: ~25 s, one run shared by the module) skip when ``../shared/data`` is
absent; the tiny generated set needs no shared data.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "anomaly"
NAB = SHARED / "nab"
REFERENCE = SHARED / "nab-reference"
NAB_FIELDS = {"nab_standard": "standard", "nab_low_fp": "reward_low_FP_rate",
              "nab_low_fn": "reward_low_FN_rate"}
DETECTORS = ("leadtime", "zscore", "hst")
PUBLISHED = ("numenta", "windowedGaussian", "null")


def _invoke(*args: str):
    from typer.testing import CliRunner

    from leadtime_cli.app import app

    return CliRunner().invoke(app, ["bench", "anomaly", *args])


def _expected_nab(outputs: dict, windows: dict) -> dict[str, float]:
    """What monitoring.nab_score's public entry point gives, keyed by the JSON field names."""
    from monitoring.nab_score import nab_scores

    results = nab_scores(outputs, windows)
    return {field: results[profile].normalized_score for field, profile in NAB_FIELDS.items()}


def _assert_sane(figures: dict) -> None:
    for field in NAB_FIELDS:
        value = figures[field]
        assert math.isfinite(value) and -100.0 <= value <= 100.0, (field, value)


# --- the shared NAB set ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def nab_document():
    if not (NAB / "windows.json").is_file():
        pytest.skip(f"NAB set not found at {NAB}")
    result = _invoke("--set", str(NAB), "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


@pytest.mark.slow
def test_leadtime_detector_beats_both_baselines_on_nab(nab_document):
    detectors = nab_document["detectors"]
    for name in DETECTORS:
        assert {"precision", "recall", "f1", "delay_minutes", "false_alarms_per_day"} <= set(detectors[name])
    assert detectors["leadtime"]["f1"] > max(detectors["zscore"]["f1"], detectors["hst"]["f1"])


@pytest.mark.slow
def test_every_detector_has_the_three_nab_scores(nab_document):
    for name in DETECTORS:
        _assert_sane(nab_document["detectors"][name])


@pytest.mark.slow
def test_reference_rows_are_nab_scores_of_the_published_outputs(nab_document):
    if not REFERENCE.is_dir():
        pytest.skip(f"NAB's published outputs not found at {REFERENCE}")
    from monitoring.nab_score import load_windows

    windows = load_windows(NAB / "windows.json")
    rows = nab_document["nab_reference"]["detectors"]
    assert list(rows) == list(PUBLISHED) and not nab_document["nab_reference"]["notes"]
    for detector in PUBLISHED:
        outputs = {}
        for key in windows:
            category, _, name = key.rpartition("/")
            outputs[key] = pd.read_csv(REFERENCE / detector / category / f"{detector}_{name}")
        for field, value in _expected_nab(outputs, windows).items():
            assert rows[detector][field] == pytest.approx(value, abs=1e-4), (detector, field)
    assert rows["numenta"]["nab_standard"] == pytest.approx(66.5, abs=0.1)
    assert all(rows["null"][field] == pytest.approx(0.0, abs=1e-9) for field in NAB_FIELDS)

    from monitoring.bench import format_table

    table = format_table(nab_document)
    assert "NAB's published detectors" in table
    assert all(f"  {name} " in table for name in PUBLISHED)


# --- a tiny generated set (no shared data) -------------------------------------------------------

@pytest.fixture
def tiny_set(tmp_path):
    """Two 5-minute series of 900 rows, each with one labelled spike late in the file."""
    root = tmp_path / "set"
    (root / "cat").mkdir(parents=True)
    rng = np.random.default_rng(3)
    stamps = pd.date_range("2024-01-01", periods=900, freq="5min")
    windows = {}
    for i, name in enumerate(("a.csv", "b.csv")):
        values = 50 + 10 * np.sin(np.arange(900) * 2 * np.pi / 288) + rng.normal(0, 1, 900)
        spike = 600 + 100 * i
        values[spike : spike + 5] += 40
        pd.DataFrame({"timestamp": stamps.strftime("%Y-%m-%d %H:%M:%S"), "value": values}).to_csv(
            root / "cat" / name, index=False)
        windows[f"cat/{name}"] = [[str(stamps[spike - 20]), str(stamps[spike + 20])]]
    (root / "windows.json").write_text(json.dumps(windows))
    return root


def test_tiny_set_json_has_nab_fields_and_says_reference_is_absent(tiny_set, tmp_path):
    missing = tmp_path / "no-reference"
    result = _invoke("--set", str(tiny_set), "--json", "--reference", str(missing))
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    for name in DETECTORS:
        assert {"f1", "precision", "recall", *NAB_FIELDS} <= set(document["detectors"][name])
        _assert_sane(document["detectors"][name])
    assert document["nab_reference"]["detectors"] == {}
    assert "not found" in document["nab_reference"]["notes"][0]

    table = _invoke("--set", str(tiny_set), "--reference", str(missing))
    assert table.exit_code == 0, table.output
    assert "nab_std" in table.output and f"not found at {missing}" in table.output


def test_tiny_set_nab_scores_equal_the_scorer_and_reference_rows_are_scored(tiny_set, tmp_path):
    """Our detectors' and a published detector's NAB figures are nab_scores' own; a published
    detector lacking the set's files is skipped with a note."""
    from leadtime.data import read_anomaly_set
    from monitoring.bench import run_anomaly_bench, stream_scores

    anomaly_set = read_anomaly_set(tiny_set)
    reference = tmp_path / "reference"
    rng = np.random.default_rng(5)
    published = {}
    for key, series in anomaly_set.series.items():
        frame = pd.DataFrame({"timestamp": series.index.strftime("%Y-%m-%d %H:%M:%S"),
                              "anomaly_score": rng.uniform(0, 1, len(series)).round(3)})
        path = reference / "numenta" / key.replace("/", "/numenta_")
        path.parent.mkdir(parents=True, exist_ok=True)
        frame.to_csv(path, index=False)
        published[key] = frame

    document = run_anomaly_bench(tiny_set, detectors=("leadtime", "zscore"), reference=reference)
    for name in ("leadtime", "zscore"):
        outputs = {key: (series.index, stream_scores(name, series)[0])
                   for key, series in anomaly_set.series.items()}
        for field, value in _expected_nab(outputs, anomaly_set.windows).items():
            assert document["detectors"][name][field] == pytest.approx(value, abs=1e-4)
    rows = document["nab_reference"]["detectors"]
    assert list(rows) == ["numenta"]
    for field, value in _expected_nab(published, anomaly_set.windows).items():
        assert rows["numenta"][field] == pytest.approx(value, abs=1e-4)
    notes = document["nab_reference"]["notes"]
    assert len(notes) == 2 and all("skipped" in note for note in notes)


def test_bad_set_is_a_clear_error(tmp_path):
    result = _invoke("--set", str(tmp_path))
    assert result.exit_code == 2 and "windows.json" in result.output
