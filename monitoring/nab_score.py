"""The official Numenta Anomaly Benchmark (NAB) score, as a pure numpy/pandas module.

What: the application-profile score of Lavin & Ahmad (2015), "Evaluating Real-time Anomaly
Detection Algorithms - the Numenta Anomaly Benchmark", computed exactly as NAB's own code does,
so that a detector of this project can be placed on NAB's published scoreboard.
Why: the window F1 of :mod:`evaluation.anomaly_bench` is ours; this score is theirs, and only a faithful
copy of it makes a comparison with NAB's published detectors meaningful.

It follows github.com/numenta/NAB:

* ``nab/sweeper.py`` (``Sweeper.calcSweepScore``): the per-row score S(t) -- inside a window
  ``scaledSigmoid(-(right - i + 1) / width) * tpWeight / scaledSigmoid(-1)``; outside,
  ``scaledSigmoid(|right_prev - i| / (width_prev - 1)) * fpWeight`` relative to the closest
  *preceding* window, ``-fpWeight`` when none precedes; the probationary period
  ``min(floor(0.15 * n), 0.15 * 5000)`` rows is never scored;
* ``nab/sweeper.py`` (``calcScoreByThreshold``, ``scoreDataSet``): a row is a detection when its
  anomaly score is ``>= threshold``; each window scores the best (= the earliest) detection in
  it, or ``-fnWeight`` when it has none; false positives add up; TP/TN/FP/FN count rows;
* ``nab/optimizer.py`` (``optimizeThreshold``): the rows of *all* files are pooled and every
  distinct anomaly score (plus 1.1, "detect nothing") is a candidate threshold; the highest
  score wins, ties going to the higher threshold;
* ``nab/scorer.py`` (``scoreCorpus``): per-file rows ``File, Threshold, Score, TP, TN, FP, FN,
  Total_Count``. NAB's published results were written by its 1.0 ``Scorer`` (same scores; its
  ``S(t)_<profile>`` column holds each row's share of the score, see
  :func:`score_contributions`, and its ``Total_Count`` is the file's number of rows);
* ``nab/runner.py`` (``normalize``): ``100 * (raw - null) / (perfect - null)``, ``null`` being the
  raw score of NAB's null detector (constant 0.5) and ``perfect`` ``tpWeight`` x number of windows;
* ``nab/labeler.py`` / ``nab/util.py``: windows are ``[start, end]`` timestamps, both inclusive,
  that must be timestamps of the file; ``config/profiles.json``: the three cost matrices.

Example -- the scaled sigmoid is about 1 at a window's left edge, 0 at its right edge and about
-1 one window-length after it:

>>> [round(float(v), 5) for v in scaled_sigmoid([-1.0, -0.5, 0.0, 1.0, 3.5])]
[0.98661, 0.84828, 0.0, -0.98661, -1.0]

A 20-row file with one window (rows 8-11) detected at its first row, and one false alarm two
rows after it (the first 3 rows are probationary):

>>> stamps = pd.date_range("2024-01-01", periods=20, freq="5min")
>>> scores = np.zeros(20); scores[[8, 13]] = 0.9
>>> window = [(stamps[8], stamps[11])]
>>> result = score_file(stamps, scores, window, 0.5, PROFILES["standard"])
>>> round(result.score, 4), result.tp, result.tn, result.fp, result.fn
(0.8976, 1, 12, 1, 3)
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

PROBATIONARY_PERCENT = 0.15
"""NAB's ``probationaryPercent``: this share of each file (at most 750 rows) is never scored."""

NO_DETECTION_THRESHOLD = 1.1
"""The sweep's starting threshold, above every anomaly score in [0, 1]: detect nothing."""

NULL_DETECTOR_SCORE = 0.5
"""NAB's null detector (``nab/detectors/null``) outputs this constant anomaly score."""

PROFILE_NAMES = ("standard", "reward_low_FP_rate", "reward_low_FN_rate")

RESULT_COLUMNS = ["File", "Threshold", "Score", "TP", "TN", "FP", "FN", "Total_Count"]


@dataclass(frozen=True)
class CostMatrix:
    """One application profile of ``config/profiles.json`` (``tnWeight`` is unused by NAB)."""

    tp_weight: float
    fp_weight: float
    fn_weight: float
    tn_weight: float = 1.0


PROFILES: dict[str, CostMatrix] = {
    "standard": CostMatrix(tp_weight=1.0, fp_weight=0.11, fn_weight=1.0),
    "reward_low_FP_rate": CostMatrix(tp_weight=1.0, fp_weight=0.22, fn_weight=1.0),
    "reward_low_FN_rate": CostMatrix(tp_weight=1.0, fp_weight=0.11, fn_weight=2.0),
}
"""NAB's ``config/profiles.json``, for use without the file."""


class FileScore(NamedTuple):
    """One file at one threshold: NAB's row of ``<detector>_<profile>_scores.csv``."""

    score: float
    tp: int
    tn: int
    fp: int
    fn: int
    threshold: float
    total_count: int


class DetectorFile(NamedTuple):
    """A detector's output on one data file, with that file's labelled windows."""

    timestamps: Any
    anomaly_scores: Any
    windows: Any


@dataclass(frozen=True)
class NabResult:
    """One profile: threshold optimised over the set, raw and normalised scores, per-file rows."""

    profile: str
    threshold: float
    raw_score: float
    null_score: float
    perfect_score: float
    normalized_score: float
    files: pd.DataFrame


@dataclass(frozen=True)
class FileSweep:
    """A file prepared for scoring at any threshold (``Sweeper.calcSweepScore``).

    ``sweep_scores`` is what the current NAB sweeper writes as ``S(t)_<profile>``: the score each
    row would earn if it were a detection. ``window_of_row`` is the index of the window holding
    each row (-1 outside every window), ``window_first_row`` the first row of each window;
    ``scorable`` is False on probation.
    """

    anomaly_scores: np.ndarray
    sweep_scores: np.ndarray
    window_of_row: np.ndarray
    window_first_row: np.ndarray
    scorable: np.ndarray
    cost_matrix: CostMatrix

    @property
    def n_windows(self) -> int:
        return len(self.window_first_row)


def load_profiles(path: str | Path) -> dict[str, CostMatrix]:
    """Read NAB's ``config/profiles.json``: ``{profile: {"CostMatrix": {"tpWeight": ...}}}``."""
    raw = json.loads(Path(path).read_text())
    return {
        name: CostMatrix(
            tp_weight=float(entry["CostMatrix"]["tpWeight"]),
            fp_weight=float(entry["CostMatrix"]["fpWeight"]),
            fn_weight=float(entry["CostMatrix"]["fnWeight"]),
            tn_weight=float(entry["CostMatrix"].get("tnWeight", 1.0)),
        )
        for name, entry in raw.items()
    }


def load_windows(path: str | Path) -> dict[str, list[tuple[pd.Timestamp, pd.Timestamp]]]:
    """Read NAB's ``labels/combined_windows.json`` (``{"<category>/<file>.csv": [[start, end]]}``)."""
    raw = json.loads(Path(path).read_text())
    return {
        name: [(pd.Timestamp(start), pd.Timestamp(end)) for start, end in limits]
        for name, limits in raw.items()
    }


def scaled_sigmoid(relative_position: Any) -> np.ndarray:
    """NAB's ``scaledSigmoid``: ``2 * sigmoid(-5 x) - 1``, and -1 beyond ``x > 3``."""
    x = np.asarray(relative_position, dtype=float)
    capped = np.minimum(x, 3.0)  # keeps exp() finite; values above 3 are replaced just below
    value = 2.0 * (1.0 / (1.0 + np.exp(5.0 * capped))) - 1.0
    return np.where(x > 3.0, -1.0, value)


def probationary_length(n_rows: int, probationary_percent: float = PROBATIONARY_PERCENT) -> float:
    """NAB's ``_getProbationaryLength``: rows ``i < this`` are never scored."""
    return min(math.floor(probationary_percent * n_rows), probationary_percent * 5000)


def _as_datetimes(values: Any) -> np.ndarray:
    return pd.to_datetime(pd.Series(np.asarray(values))).to_numpy(dtype="datetime64[ns]")


class _WindowSpans(NamedTuple):
    """Where NAB's row walk puts each window (``calcSweepScore``), in row indices."""

    entry: np.ndarray  # first row of the window: the first row equal to its start, in order
    exit: np.ndarray  # last row: the first row at or after `entry` equal to its end
    right: np.ndarray  # `timestamps.index(end)`: the first row equal to its end
    width: np.ndarray  # `timestamps.index(end) - timestamps.index(start) + 1`


def _window_spans(timestamps: np.ndarray, windows: Any) -> _WindowSpans:
    """Walk the rows in file order as NAB does, entering and leaving windows on equal timestamps.

    NAB works on row order, not on time order (some NAB files repeat or step back timestamps at
    daylight-saving changes): a window starts at the first row, after the previous window, equal
    to its start, and ends at the next row equal to its end. Its right edge and width come from
    the *first* occurrences of its limits (``list.index``). Limits that are not timestamps of the
    file raise (NAB's labeler requires them; its sweeper would silently skip the window).
    """
    limits = [(start, end) for start, end in windows]
    starts = _as_datetimes([start for start, _ in limits])
    ends = _as_datetimes([end for _, end in limits])
    if (starts[1:] <= starts[:-1]).any() or (ends < starts).any():
        raise ValueError("windows must be (start, end) pairs, start <= end, in increasing order")
    spans: list[tuple[int, int, int, int]] = []
    scan = 0
    for start, end in zip(starts, ends):
        first_start = np.flatnonzero(timestamps == start)
        first_end = np.flatnonzero(timestamps == end)
        entry = first_start[first_start >= scan]
        if not len(entry) or not len(first_end):
            missing = pd.Timestamp(start if not len(entry) else end)
            raise ValueError(f"window limit {missing} is not a timestamp of the file "
                             "(or windows overlap)")
        exit_ = first_end[first_end >= entry[0]]
        if not len(exit_):
            raise ValueError(f"window end {pd.Timestamp(end)} comes before its start")
        spans.append((int(entry[0]), int(exit_[0]), int(first_end[0]),
                      int(first_end[0] - first_start[0] + 1)))
        scan = int(exit_[0]) + 1
    columns = np.array(spans, dtype=np.int64).reshape(-1, 4).T
    return _WindowSpans(*columns)


def sweep_file(
    timestamps: Any,
    anomaly_scores: Any,
    windows: Any,
    cost_matrix: CostMatrix,
    probationary_percent: float = PROBATIONARY_PERCENT,
) -> FileSweep:
    """Per-row S(t), window membership and probation of one file (``calcSweepScore``)."""
    stamps = _as_datetimes(timestamps)
    scores = np.asarray(anomaly_scores, dtype=float)
    n_rows = len(stamps)
    if len(scores) != n_rows:
        raise ValueError("timestamps and anomaly_scores must have the same length")
    spans = _window_spans(stamps, windows)
    width = spans.width.astype(float)

    rows = np.arange(n_rows)
    window_of_row = np.full(n_rows, -1, dtype=np.int64)
    for window, (first, last) in enumerate(zip(spans.entry, spans.exit)):
        window_of_row[first : last + 1] = window

    sweep = np.empty(n_rows, dtype=float)
    inside = window_of_row >= 0
    held = window_of_row[inside]
    max_tp = float(scaled_sigmoid(-1.0))
    position_in_window = -(spans.right[held] - rows[inside] + 1) / width[held]
    sweep[inside] = scaled_sigmoid(position_in_window) * cost_matrix.tp_weight / max_tp

    # Outside: relative to the closest preceding window, i.e. the last one exited before the row.
    preceding = np.searchsorted(spans.exit, rows, side="left") - 1
    after_none = ~inside & (preceding < 0)
    after_one = ~inside & (preceding >= 0)
    sweep[after_none] = -1.0 * cost_matrix.fp_weight
    previous = preceding[after_one]
    with np.errstate(divide="ignore"):  # a 1-row window: NAB divides by 0; here -> far away, -1
        position_past_window = (np.abs(spans.exit[previous] - rows[after_one])
                                / (width[previous] - 1))
    sweep[after_one] = scaled_sigmoid(position_past_window) * cost_matrix.fp_weight

    scorable = rows >= probationary_length(n_rows, probationary_percent)
    return FileSweep(scores, sweep, window_of_row, spans.entry, scorable, cost_matrix)


def _evaluate(sweep: FileSweep, threshold: float) -> tuple[FileScore, np.ndarray]:
    """The file's score at one threshold, and each row's contribution to it."""
    inside = sweep.window_of_row >= 0
    detected = sweep.scorable & (sweep.anomaly_scores >= threshold)
    true_positive = detected & inside
    false_positive = detected & ~inside
    # Windows with no scorable row (wholly on probation) are not scored, as in the sweeper.
    scorable_windows = np.unique(sweep.window_of_row[sweep.scorable & inside])
    best = np.full(sweep.n_windows, -float(sweep.cost_matrix.fn_weight))
    np.maximum.at(best, sweep.window_of_row[true_positive], sweep.sweep_scores[true_positive])
    contributions = np.zeros(len(sweep.anomaly_scores))
    contributions[false_positive] = sweep.sweep_scores[false_positive]
    contributions[sweep.window_first_row[scorable_windows]] = best[scorable_windows]
    score = float(sweep.sweep_scores[false_positive].sum()) + float(best[scorable_windows].sum())
    tp, fp = int(true_positive.sum()), int(false_positive.sum())
    in_window = int((sweep.scorable & inside).sum())
    out_window = int((sweep.scorable & ~inside).sum())
    result = FileScore(score, tp, out_window - fp, fp, in_window - tp, float(threshold),
                       len(sweep.anomaly_scores))
    return result, contributions


def score_sweep(sweep: FileSweep, threshold: float) -> FileScore:
    """Score a prepared file at one threshold (``Sweeper.scoreDataSet``)."""
    return _evaluate(sweep, threshold)[0]


def score_contributions(sweep: FileSweep, threshold: float) -> np.ndarray:
    """Each row's share of the file's score at one threshold; the shares sum to the score.

    A window's score (its best detection, or ``-fnWeight``) sits on its first row and each false
    positive's on its row, 0 elsewhere: the ``S(t)_<profile>`` column of NAB's published results
    (written by ``Scorer.getScore`` in NAB 1.0's ``nab/scorer.py``).
    """
    return _evaluate(sweep, threshold)[1]


def score_file(
    timestamps: Any,
    anomaly_scores: Any,
    windows: Any,
    threshold: float,
    cost_matrix: CostMatrix,
    probationary_percent: float = PROBATIONARY_PERCENT,
) -> FileScore:
    """NAB score and TP/TN/FP/FN row counts of one file at one threshold.

    ``windows`` are ``(start, end)`` timestamps (inclusive) of the file; a row detects when its
    anomaly score is ``>= threshold``. ``total_count`` is the file's number of rows, as in NAB's
    published ``Total_Count``.
    """
    sweep = sweep_file(timestamps, anomaly_scores, windows, cost_matrix, probationary_percent)
    return score_sweep(sweep, threshold)


def _detector_files(files: Mapping[str, Any] | Iterable[Any]) -> list[DetectorFile]:
    values = files.values() if isinstance(files, Mapping) else files
    return [DetectorFile(*item) for item in values]


def score_by_threshold(
    files: Mapping[str, Any] | Iterable[Any],
    cost_matrix: CostMatrix,
    probationary_percent: float = PROBATIONARY_PERCENT,
) -> pd.DataFrame:
    """NAB's ``calcScoreByThreshold`` over a pooled set of files, vectorised.

    ``files``: ``DetectorFile``-like ``(timestamps, anomaly_scores, windows)`` triples (or a
    mapping to them). One row per candidate threshold, highest first: ``threshold, score, tp, tn,
    fp, fn``, where ``score`` is the set's raw score when detecting ``anomaly_score >= threshold``.
    """
    sweeps = [sweep_file(*item, cost_matrix, probationary_percent)
              for item in _detector_files(files)]
    scores, sweep_values, windows = [], [], []
    base_score, in_window, out_window, offset = 0.0, 0, 0, 0
    for sweep in sweeps:
        inside = sweep.window_of_row >= 0
        base_score -= cost_matrix.fn_weight * len(
            np.unique(sweep.window_of_row[sweep.scorable & inside]))
        in_window += int((sweep.scorable & inside).sum())
        out_window += int((sweep.scorable & ~inside).sum())
        # NaN scores never detect: they stay in the counts but are no candidate threshold.
        keep = sweep.scorable & ~np.isnan(sweep.anomaly_scores)
        scores.append(sweep.anomaly_scores[keep])
        sweep_values.append(sweep.sweep_scores[keep])
        windows.append(np.where(inside[keep], sweep.window_of_row[keep] + offset, -1))
        offset += sweep.n_windows
    score = np.concatenate(scores) if scores else np.zeros(0)
    value = np.concatenate(sweep_values) if scores else np.zeros(0)
    window = np.concatenate(windows) if scores else np.zeros(0, dtype=np.int64)

    order = np.argsort(-score, kind="stable")
    score, value, window = score[order], value[order], window[order]
    is_fp = window < 0
    # A window's part is the best S(t) of its detections so far, starting at -fnWeight.
    running_best = pd.Series(value[~is_fp]).groupby(window[~is_fp]).cummax().to_numpy()
    running_best = np.maximum(running_best, -cost_matrix.fn_weight)
    before = (pd.Series(running_best).groupby(window[~is_fp]).shift(1)
              .fillna(-cost_matrix.fn_weight).to_numpy())
    gain = np.where(is_fp, value, 0.0)
    gain[~is_fp] = running_best - before
    total = base_score + np.cumsum(gain)
    tp, fp = np.cumsum(~is_fp), np.cumsum(is_fp)

    group_end = np.flatnonzero(np.append(score[1:] != score[:-1], True)) if len(score) else []
    top = NO_DETECTION_THRESHOLD
    if len(score) and score[0] >= top:
        top = float(np.nextafter(score[0], np.inf))
    return pd.DataFrame({
        "threshold": np.concatenate([[top], score[group_end]]),
        "score": np.concatenate([[base_score], total[group_end]]),
        "tp": np.concatenate([[0], tp[group_end]]),
        "tn": np.concatenate([[out_window], out_window - fp[group_end]]),
        "fp": np.concatenate([[0], fp[group_end]]),
        "fn": np.concatenate([[in_window], in_window - tp[group_end]]),
    })


def optimize_threshold(
    files: Mapping[str, Any] | Iterable[Any],
    cost_matrix: CostMatrix,
    probationary_percent: float = PROBATIONARY_PERCENT,
) -> tuple[float, float]:
    """NAB's ``optimizeThreshold``: the threshold maximising the set's raw score, and that score.

    Ties go to the higher threshold (NAB takes the first of a stable sort by score).
    """
    curve = score_by_threshold(files, cost_matrix, probationary_percent)
    best = int(np.argmax(curve["score"].to_numpy()))
    return float(curve["threshold"].iloc[best]), float(curve["score"].iloc[best])


def normalized_score(raw: float, null_raw: float, perfect_raw: float) -> float:
    """NAB's normalisation: the null detector maps to 0, the perfect detector to 100.

    >>> normalized_score(-10.0, -10.0, 30.0), normalized_score(30.0, -10.0, 30.0)
    (0.0, 100.0)
    """
    return 100.0 * (raw - null_raw) / (perfect_raw - null_raw)


def _timestamps_and_scores(detections: Any) -> tuple[Any, Any]:
    if isinstance(detections, pd.DataFrame):
        return detections["timestamp"], detections["anomaly_score"]
    timestamps, anomaly_scores = detections
    return timestamps, anomaly_scores


def nab_scores(
    detections_by_file: Mapping[str, Any],
    windows_by_file: Mapping[str, Any],
    profiles: Mapping[str, CostMatrix] | None = None,
    probationary_percent: float = PROBATIONARY_PERCENT,
) -> dict[str, NabResult]:
    """NAB's optimise, score and normalise steps for one detector on a set of files.

    ``detections_by_file`` maps ``"<category>/<file>.csv"`` to a DataFrame with ``timestamp`` and
    ``anomaly_score`` columns (or a ``(timestamps, anomaly_scores)`` pair); ``windows_by_file``
    maps the same names to ``(start, end)`` pairs (see :func:`load_windows`). Per profile, the
    threshold is optimised over the whole set; ``null_score`` is what NAB's null detector scores
    on the same files and ``perfect_score`` is ``tpWeight`` x number of windows.
    """
    profiles = PROFILES if profiles is None else profiles
    names = sorted(detections_by_file)
    files = {name: DetectorFile(*_timestamps_and_scores(detections_by_file[name]),
                                windows_by_file.get(name, []))
             for name in names}
    null_files = {name: DetectorFile(item.timestamps,
                                     np.full(len(item.anomaly_scores), NULL_DETECTOR_SCORE),
                                     item.windows)
                  for name, item in files.items()}
    n_windows = sum(len(list(item.windows)) for item in files.values())
    results = {}
    for profile, cost in profiles.items():
        threshold, raw = optimize_threshold(files, cost, probationary_percent)
        _, null_raw = optimize_threshold(null_files, cost, probationary_percent)
        perfect = cost.tp_weight * n_windows
        rows = [(name, *_file_row(score_file(*item, threshold, cost, probationary_percent)))
                for name, item in files.items()]
        results[profile] = NabResult(
            profile=profile,
            threshold=threshold,
            raw_score=raw,
            null_score=null_raw,
            perfect_score=perfect,
            normalized_score=normalized_score(raw, null_raw, perfect),
            files=pd.DataFrame(rows, columns=RESULT_COLUMNS),
        )
    return results


def _file_row(result: FileScore) -> tuple[float, float, int, int, int, int, int]:
    return (result.threshold, result.score, result.tp, result.tn, result.fp, result.fn,
            result.total_count)


def benchmark_nab_scores(
    detections_by_file: Mapping[str, Any],
    windows_by_file: Mapping[str, Any],
    profiles: Mapping[str, CostMatrix] | None = None,
) -> dict[str, float]:
    """A detector's per-timestamp scores -> NAB normalised score per profile (0 null, 100 perfect).

    What a benchmark command calls: the threshold of each profile is optimised over the whole set.
    """
    return {profile: result.normalized_score
            for profile, result in nab_scores(detections_by_file, windows_by_file,
                                              profiles).items()}

