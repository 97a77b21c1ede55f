"""`leadtime bench anomaly`: window F1 and NAB scores, with NAB's published detectors beneath,
and the leave-one-category-out mode (``--loco``).

The shared-NAB tests (slow: ~50 s, one ``--loco`` run shared by the module) skip when
``../shared/data`` is absent; the tiny generated sets need no shared data.
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
DETECTORS = ("leadtime", "zscore", "hst", "residual")
BASELINES = ("zscore", "hst")
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
    result = _invoke("--set", str(NAB), "--json", "--loco")
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


@pytest.mark.slow
def test_leadtime_detector_beats_both_baselines_on_nab(nab_document):
    detectors = nab_document["detectors"]
    for name in DETECTORS:
        assert {"precision", "recall", "f1", "delay_minutes", "false_alarms_per_day"} <= set(detectors[name])
    for measure in ("f1", "nab_standard"):
        assert detectors["leadtime"][measure] > max(detectors[b][measure] for b in BASELINES)


@pytest.mark.slow
def test_leadtime_beats_both_baselines_in_both_loco_directions(nab_document):
    """The issue's bar: NAB standard and F1, thresholds chosen on the other category only."""
    directions = nab_document["loco"]["directions"]
    assert {(d["train"], d["test"]) for d in directions} == {
        ("realAWSCloudwatch", "realKnownCause"), ("realKnownCause", "realAWSCloudwatch")}
    for direction in directions:
        rows = direction["detectors"]
        for measure in ("nab_standard", "f1"):
            assert rows["leadtime"][measure] > max(rows[b][measure] for b in BASELINES), (
                direction["test"], measure)


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

    from evaluation.anomaly_bench import format_table

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
    from evaluation.anomaly_bench import run_anomaly_bench, stream_scores
    from leadtime.data import read_anomaly_set

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


@pytest.fixture
def two_category_set(tmp_path):
    """Categories ``alpha`` (5-minute rows) and ``beta`` (10-minute rows), two series each, every
    series with one labelled level jump late in the file."""
    root = tmp_path / "loco"
    rng = np.random.default_rng(11)
    windows = {}
    for category, freq in (("alpha", "5min"), ("beta", "10min")):
        (root / category).mkdir(parents=True)
        stamps = pd.date_range("2024-01-01", periods=1400, freq=freq)
        for i in range(2):
            values = 20 + 5 * np.sin(np.arange(1400) * 2 * np.pi / 144) + rng.normal(0, 0.5, 1400)
            jump = 1000 + 150 * i
            values[jump : jump + 8] += 25
            name = f"s{i}.csv"
            pd.DataFrame({"timestamp": stamps.strftime("%Y-%m-%d %H:%M:%S"),
                          "value": values}).to_csv(root / category / name, index=False)
            windows[f"{category}/{name}"] = [[str(stamps[jump - 30]), str(stamps[jump + 30])]]
    (root / "windows.json").write_text(json.dumps(windows))
    return root


def test_loco_end_to_end_on_a_generated_set(two_category_set, tmp_path):
    result = _invoke("--set", str(two_category_set), "--json", "--loco",
                     "--reference", str(tmp_path / "none"))
    assert result.exit_code == 0, result.output
    section = json.loads(result.output)["loco"]
    assert [(d["train"], d["test"]) for d in section["directions"]] == [
        ("beta", "alpha"), ("alpha", "beta")]
    for direction in section["directions"]:
        assert list(direction["detectors"]) == list(DETECTORS)
        for name, row in direction["detectors"].items():
            _assert_sane(row)
            assert row["windows"] == 2 and 0.0 <= row["f1"] <= 1.0, name
            assert set(row["nab_thresholds"]) == set(NAB_FIELDS.values())
            assert {"nab_standard", "f1"} <= set(row["train"])
        # one clear jump per series: KNN-CAD finds every test window
        assert direction["detectors"]["leadtime"]["detected"] == 2

    table = _invoke("--set", str(two_category_set), "--loco", "--reference", str(tmp_path / "none"))
    assert table.exit_code == 0, table.output
    assert "train alpha -> test beta" in table.output and "train beta -> test alpha" in table.output


def test_loco_thresholds_never_read_the_test_labels(two_category_set, tmp_path):
    """Dropping a test series' labels changes the test figures, never the thresholds."""
    from evaluation.anomaly_bench import run_anomaly_bench

    def direction(root):
        document = run_anomaly_bench(root, detectors=("leadtime", "zscore"),
                                     reference=tmp_path / "none", leave_one_out=True)
        return next(d for d in document["loco"]["directions"] if d["test"] == "beta")

    before = direction(two_category_set)
    labels = json.loads((two_category_set / "windows.json").read_text())
    labels["beta/s1.csv"] = []
    (two_category_set / "windows.json").write_text(json.dumps(labels))
    after = direction(two_category_set)
    for name in ("leadtime", "zscore"):
        b, a = before["detectors"][name], after["detectors"][name]
        assert (a["f1_floor"], a["nab_thresholds"]) == (b["f1_floor"], b["nab_thresholds"])
        assert b["windows"] == 2 and a["windows"] == 1


def test_loco_needs_two_categories(tiny_set):
    result = _invoke("--set", str(tiny_set), "--loco")
    assert result.exit_code != 0 and "two categories" in result.output


def test_bad_set_is_a_clear_error(tmp_path):
    result = _invoke("--set", str(tmp_path))
    assert result.exit_code == 2 and "windows.json" in result.output
