"""``leadtime bench anomaly``: window-based scoring of streaming detectors on an anomaly set.

Protocol (identical for every detector, one fixed configuration for every series):

* each series is streamed once; a detector scores each sample before learning it;
* the first ``probation`` share (NAB's probationary period, 15 %) is never scored; the alert
  threshold of the series is calibrated on the scores of its later part (after a warm-up of a
  third of it): the maximum score seen there (:func:`monitoring.detectors.calibrate_threshold`).
  Labels are never read to calibrate;
* an *alarm* is a sample whose score exceeds the threshold; alarms closer than ``cooldown_s``
  (one hour) to a previous alarm belong to the same episode;
* a labelled window (clipped to the scored part) is *detected* when it holds at least one alarm;
  its detection delay is the time from the window's start to that first alarm;
* a *false alarm* is an alarm episode that starts outside every window;
* precision = detected windows / (detected windows + false alarms), recall = detected windows /
  windows, F1 their harmonic mean; all summed over the set (micro average).

The window F1 is this project's own measure; beside it, each detector gets NAB's normalised score
(:mod:`monitoring.nab_score`, 0 = NAB's null detector, 100 = perfect) for the profiles
``standard``, ``reward_low_FP_rate`` and ``reward_low_FN_rate``, each with its threshold optimised
over the whole set by NAB's optimiser -- NAB's protocol, which does read the labels, identically
for every detector. NAB wants per-timestamp anomaly scores in [0, 1]; every detector of
:mod:`monitoring.detectors` already returns one, so its stream is scored *unchanged* (no rescaling,
nothing tuned on labels; a score outside [0, 1] is an error):

* ``leadtime``: KNN-CAD's conformal p-value (:mod:`monitoring.knncad`; its a-priori alert floor,
  KNN-CAD's published alert level 0.9965, serves the F1 alarms only);
* ``residual`` (leadtime's previous detector): NAB's log-scaled anomaly likelihood of its
  forecast residuals, the form of NAB's own ``numenta`` output (alert floor 0.5);
* ``zscore``: the two-sided normal mass within ``|z|`` (``erf(|z| / sqrt 2)``), the counterpart of
  NAB's ``windowedGaussian`` (one minus a normal tail probability);
* ``hst``: River's ``HalfSpaceTrees`` score, in [0, 1] by construction.

For comparison the same scorer runs on NAB's *published* per-timestamp outputs of ``numenta``
(HTM), ``windowedGaussian`` and ``null`` for the set's files (``nab-reference/<detector>/
<category>/<detector>_<file>.csv``, column ``anomaly_score``), with the same windows and the same
threshold optimisation: these rows are NAB's detectors, not re-runs.

Leave-one-category-out (``--loco``, :func:`loco`): the set's categories (its top-level folders)
take turns as the *test* category, the others being the *training* one. Everything label-driven
is chosen on the training category only and applied unchanged to the test category: per NAB
profile the threshold NAB's optimiser picks on the training files; for the window F1, the alert
floor (per series the threshold is ``max(floor, calibrated threshold)``, the calibration as
above) maximising the training F1 over a grid of the training scores' upper quantiles. The test
figures are normalised with the test category's own null and perfect scores. The detectors'
streams are those of the main table (each series streamed once).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from monitoring.detectors import calibrate_threshold, interval_of, make_detector
from monitoring.nab_score import (
    NULL_DETECTOR_SCORE,
    PROFILES,
    DetectorFile,
    normalized_score,
    optimize_threshold,
    score_file,
)

PROBATION = 0.15
COOLDOWN_S = 3600.0  # one hour
DETECTOR_NAMES = ("leadtime", "zscore", "hst", "residual")
NAB_FIELDS = {"nab_standard": "standard", "nab_low_fp": "reward_low_FP_rate",
              "nab_low_fn": "reward_low_FN_rate"}
"""JSON field -> NAB profile."""
REFERENCE_DETECTORS = ("numenta", "windowedGaussian", "null")
"""NAB's published detectors shown beneath ours (``numenta`` is NAB's HTM detector)."""


@dataclass(frozen=True)
class SeriesScore:
    windows: int
    detected: int
    false_alarms: int
    delays_min: list[float]
    scored_days: float
    threshold: float


def stream_scores(name: str, series: pd.Series, **kwargs) -> tuple[np.ndarray, float]:
    """Scores of a fresh detector streamed over the series, and the detector's threshold floor.

    The detector gets the series' sampling interval (from its first rows), from which it derives
    all its windows.
    """
    kwargs.setdefault("interval_s", interval_of(series.index))
    detector = make_detector(name, **kwargs)
    scores = np.array([detector.score_learn(float(v)) for v in series.to_numpy()])
    return scores, float(getattr(detector, "min_threshold", 0.0))


def score_series(
    series: pd.Series,
    scores: np.ndarray,
    windows: list[tuple[pd.Timestamp, pd.Timestamp]],
    probation: float = PROBATION,
    cooldown_s: float = COOLDOWN_S,
    floor: float = 0.0,
) -> SeriesScore:
    """Window-based counts of one series (see the module docstring)."""
    cooldown = pd.Timedelta(seconds=cooldown_s)
    n = len(series)
    n_prob = max(int(n * probation), 3)
    threshold = max(floor, calibrate_threshold(scores[n_prob // 3 : n_prob]))
    index = series.index
    scored_start = index[n_prob]
    alarm_idx = np.flatnonzero(scores[n_prob:] > threshold) + n_prob
    alarm_times = index[alarm_idx]
    episodes: list[pd.Timestamp] = []
    last: pd.Timestamp | None = None
    for t in alarm_times:
        if last is None or t - last > cooldown:
            episodes.append(t)
        last = t
    spans = [(max(s, scored_start), e) for s, e in windows if e >= scored_start]
    detected, delays = 0, []
    for start, end in spans:
        inside = alarm_times[(alarm_times >= start) & (alarm_times <= end)]
        if len(inside):
            detected += 1
            delays.append((inside[0] - start).total_seconds() / 60.0)
    false = sum(1 for t in episodes if not any(s <= t <= e for s, e in spans))
    days = (index[-1] - scored_start).total_seconds() / 86400.0
    return SeriesScore(len(spans), detected, false, delays, days, threshold)


def summarise(parts: list[SeriesScore]) -> dict[str, float | None]:
    windows = sum(p.windows for p in parts)
    detected = sum(p.detected for p in parts)
    false = sum(p.false_alarms for p in parts)
    days = sum(p.scored_days for p in parts)
    delays = [d for p in parts for d in p.delays_min]
    return {
        **precision_recall_f1(windows, detected, false),
        "delay_minutes": round(float(np.mean(delays)), 1) if delays else None,
        "false_alarms_per_day": round(false / days, 4) if days else None,
        "windows": windows,
        "detected": detected,
        "false_alarms": false,
    }


def precision_recall_f1(windows: int, detected: int, false_alarms: int) -> dict[str, float]:
    """Window precision, recall and F1 from the counts (0 where undefined), rounded to 4 places."""
    precision = detected / (detected + false_alarms) if detected + false_alarms else 0.0
    recall = detected / windows if windows else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4)}


def default_reference_dir() -> Path:
    """Where NAB's published outputs live: ``<data_dir>/anomaly/nab-reference``."""
    from leadtime.settings import get_settings

    return get_settings().data_dir / "anomaly" / "nab-reference"


@dataclass(frozen=True)
class NabSet:
    """The set as NAB scores it, shared by every detector.

    ``stamps``: each file's row instants as int64 nanoseconds (the scorer reads them as the same
    instants, about twice as fast as datetime64 values); ``windows``: each file's windows as
    timestamps of its rows; ``null_raw`` / ``perfect_raw``: NAB's null and perfect raw scores per
    profile, the ends of the normalisation (computed once, as :func:`nab_score.nab_scores` does).
    """

    stamps: dict[str, np.ndarray]
    windows: dict[str, list[tuple[pd.Timestamp, pd.Timestamp]]]
    null_raw: dict[str, float]
    perfect_raw: dict[str, float]


def nab_windows(index: pd.DatetimeIndex, windows: list[tuple[pd.Timestamp, pd.Timestamp]]):
    """Windows whose limits are timestamps of the file, as NAB requires.

    NAB's own labels already are (they pass unchanged); other sets' limits are moved inwards to
    the first and last row inside the window, and a window holding no row is dropped.
    """
    out = []
    for start, end in windows:
        if start in index and end in index:
            out.append((start, end))
            continue
        inside = index[(index >= start) & (index <= end)]
        if len(inside):
            out.append((inside.min(), inside.max()))
    return out


def nab_set(series: dict[str, pd.Series], windows: dict[str, list]) -> NabSet:
    """Prepare the set's files for NAB scoring (see :class:`NabSet`)."""
    stamps = {key: s.index.to_numpy(dtype="datetime64[ns]").view(np.int64)
              for key, s in series.items()}
    spans = {key: nab_windows(s.index, windows.get(key, [])) for key, s in series.items()}
    null_files = [DetectorFile(stamps[key], np.full(len(stamps[key]), NULL_DETECTOR_SCORE),
                               spans[key]) for key in sorted(series)]
    n_windows = sum(len(v) for v in spans.values())
    null_raw = {profile: optimize_threshold(null_files, cost)[1]
                for profile, cost in PROFILES.items()}
    perfect_raw = {profile: cost.tp_weight * n_windows for profile, cost in PROFILES.items()}
    return NabSet(stamps, spans, null_raw, perfect_raw)


def nab_figures(nab: NabSet, scores: dict[str, np.ndarray]) -> dict:
    """NAB normalised score per profile of one detector's per-row anomaly scores on the set.

    Per profile the threshold is optimised over all files at once (``optimize_threshold``); the
    result equals ``nab_score.nab_scores(...)[profile].normalized_score``.
    """
    for key, values in scores.items():
        finite = values[~np.isnan(values)]
        if len(finite) and (finite.min() < 0.0 or finite.max() > 1.0):
            raise ValueError(f"{key}: anomaly scores outside [0, 1] cannot be NAB-scored")
    files = [DetectorFile(nab.stamps[key], scores[key], nab.windows[key]) for key in sorted(scores)]
    figures: dict = {}
    thresholds = {}
    for field_name, profile in NAB_FIELDS.items():
        threshold, raw = optimize_threshold(files, PROFILES[profile])
        figures[field_name] = round(
            normalized_score(raw, nab.null_raw[profile], nab.perfect_raw[profile]), 4)
        thresholds[profile] = threshold
    figures["nab_thresholds"] = thresholds
    return figures


def published_scores(reference: Path, detector: str, nab: NabSet) -> dict[str, np.ndarray]:
    """NAB's published per-row ``anomaly_score`` of one detector for every file of the set.

    Raises ``FileNotFoundError`` when a file is missing and ``ValueError`` when its rows are not
    those of the set's file (the comparison must be on the same rows).
    """
    scores = {}
    for key, stamps in nab.stamps.items():
        category, _, name = key.rpartition("/")
        path = reference / detector / category / f"{detector}_{name}"
        if not path.is_file():
            raise FileNotFoundError(f"no {path} for {key}")
        frame = pd.read_csv(path, usecols=["timestamp", "anomaly_score"])
        published = (pd.to_datetime(frame["timestamp"], format="ISO8601")
                     .to_numpy(dtype="datetime64[ns]").view(np.int64))
        if not np.array_equal(published, stamps):
            raise ValueError(f"{path}: its rows are not those of {key}")
        scores[key] = frame["anomaly_score"].to_numpy(dtype=float)
    return scores


def reference_rows(reference: Path, nab: NabSet) -> dict:
    """NAB's published detectors scored on the set; notes say what was skipped and why."""
    rows: dict[str, dict] = {}
    notes: list[str] = []
    if not reference.is_dir():
        notes.append(f"NAB's published outputs not found at {reference}: reference rows skipped")
    else:
        for detector in REFERENCE_DETECTORS:
            try:
                rows[detector] = nab_figures(nab, published_scores(reference, detector, nab))
            except (OSError, ValueError) as exc:
                notes.append(f"NAB's published {detector} skipped: {exc}")
    return {"dir": str(reference), "detectors": rows, "notes": notes}


# --- leave one category out -------------------------------------------------------------------

@dataclass(frozen=True)
class AlarmStream:
    """One series' scored part, ready to count windows and false alarms at any alert floor."""

    times: np.ndarray  # int64 ns of the scored rows
    scores: np.ndarray
    calibrated: float  # the series' own threshold (see score_series)
    spans: np.ndarray  # (n, 2) int64 ns windows clipped to the scored part


def alarm_stream(series: pd.Series, scores: np.ndarray, windows: list,
                 probation: float = PROBATION) -> AlarmStream:
    n_prob = max(int(len(series) * probation), 3)
    times = series.index.to_numpy(dtype="datetime64[ns]").view(np.int64)
    start = times[n_prob]
    spans = np.array([(max(pd.Timestamp(s).value, start), pd.Timestamp(e).value)
                      for s, e in windows if pd.Timestamp(e).value >= start],
                     dtype=np.int64).reshape(-1, 2)
    return AlarmStream(times[n_prob:], np.asarray(scores[n_prob:], dtype=float),
                       calibrate_threshold(scores[n_prob // 3 : n_prob]), spans)


def window_counts(stream: AlarmStream, floor: float,
                  cooldown_s: float = COOLDOWN_S) -> tuple[int, int, int]:
    """(windows, detected, false alarms) at threshold ``max(floor, calibrated)``, exactly as
    :func:`score_series` counts them, vectorised."""
    alarms = stream.times[stream.scores > max(floor, stream.calibrated)]
    spans = stream.spans
    if not len(alarms):
        return len(spans), 0, 0
    detected = 0
    if len(spans):
        first = np.searchsorted(alarms, spans[:, 0], "left")
        last = np.searchsorted(alarms, spans[:, 1], "right")
        detected = int(np.count_nonzero(last > first))
    cooldown_ns = pd.Timedelta(seconds=cooldown_s).value
    starts = alarms[np.concatenate([[True], np.diff(alarms) > cooldown_ns])]
    inside = np.zeros(len(starts), dtype=bool)
    for s, e in spans:
        inside |= (starts >= s) & (starts <= e)
    return len(spans), detected, int(np.count_nonzero(~inside))


def window_f1(streams: list[AlarmStream], floor: float) -> dict[str, float]:
    windows = detected = false = 0
    for stream in streams:
        w, d, f = window_counts(stream, floor)
        windows, detected, false = windows + w, detected + d, false + f
    return {**precision_recall_f1(windows, detected, false),
            "detected": detected, "windows": windows, "false_alarms": false}


def floor_grid(streams: list[AlarmStream]) -> np.ndarray:
    """Candidate alert floors: 0 and upper quantiles (1 - 10^-6 ... median) of the scores."""
    pooled = np.concatenate([s.scores[np.isfinite(s.scores)] for s in streams] or [np.zeros(1)])
    if not len(pooled):
        return np.zeros(1)
    levels = np.clip(1.0 - np.logspace(-6, np.log10(0.5), 100), 0.0, 1.0)
    return np.unique(np.concatenate([[0.0], np.quantile(pooled, levels)]))


def choose_floor(streams: list[AlarmStream]) -> tuple[float, dict]:
    """The floor of :func:`floor_grid` with the best F1 on these streams (ties: the lowest)."""
    best_floor, best = 0.0, None
    for floor in floor_grid(streams):
        figures = window_f1(streams, float(floor))
        if best is None or figures["f1"] > best["f1"]:
            best_floor, best = float(floor), figures
    return best_floor, best


def nab_at(nab: NabSet, scores: dict[str, np.ndarray], thresholds: dict[str, float]) -> dict:
    """NAB normalised score per profile at given thresholds (no optimisation)."""
    files = [(nab.stamps[k], scores[k], nab.windows[k]) for k in sorted(nab.stamps)]
    out = {}
    for field_name, profile in NAB_FIELDS.items():
        raw = sum(score_file(*f, thresholds[profile], PROFILES[profile]).score for f in files)
        out[field_name] = round(
            normalized_score(raw, nab.null_raw[profile], nab.perfect_raw[profile]), 4)
    return out


def category_of(key: str) -> str:
    return key.split("/", 1)[0] if "/" in key else ""


def loco(series: dict[str, pd.Series], windows: dict[str, list],
         streams: dict[str, dict[str, np.ndarray]]) -> dict:
    """Leave-one-category-out figures of every detector (see the module docstring).

    ``streams``: detector -> series key -> per-row scores. Needs at least two categories.
    """
    categories = sorted({category_of(k) for k in series})
    if len(categories) < 2:
        raise ValueError(f"leave-one-category-out needs two categories, found {categories}")
    nabs = {c: nab_set({k: s for k, s in series.items() if category_of(k) == c}, windows)
            for c in categories}
    train_nabs = {c: nab_set({k: s for k, s in series.items() if category_of(k) != c}, windows)
                  for c in categories}
    alarms = {name: {k: alarm_stream(series[k], by_key[k], windows.get(k, [])) for k in series}
              for name, by_key in streams.items()}  # the same in every direction
    directions = []
    for test in categories:
        train = [c for c in categories if c != test]
        train_keys = [k for k in series if category_of(k) != test]
        test_keys = [k for k in series if category_of(k) == test]
        rows = {}
        for name, by_key in streams.items():
            fitted = nab_figures(train_nabs[test], {k: by_key[k] for k in train_keys})
            tested = nab_at(nabs[test], {k: by_key[k] for k in test_keys}, fitted["nab_thresholds"])
            alarm = alarms[name]
            floor, train_f1 = choose_floor([alarm[k] for k in train_keys])
            rows[name] = {
                **tested, **window_f1([alarm[k] for k in test_keys], floor),
                "f1_floor": floor, "nab_thresholds": fitted["nab_thresholds"],
                "train": {"nab_standard": fitted["nab_standard"], "nab_low_fp": fitted["nab_low_fp"],
                          "nab_low_fn": fitted["nab_low_fn"], "f1": train_f1["f1"]},
            }
        directions.append({"train": "+".join(train), "test": test, "detectors": rows})
    return {"protocol": "thresholds (NAB per profile, F1 alert floor) chosen on the training "
                        "category only, applied to the test category", "directions": directions}


def run_anomaly_bench(
    root: str | Path,
    detectors: tuple[str, ...] = DETECTOR_NAMES,
    reference: str | Path | None = None,
    leave_one_out: bool = False,
) -> dict:
    """The benchmark document: per detector, the set's window-based figures and NAB scores.

    ``reference``: folder of NAB's published outputs (default :func:`default_reference_dir`);
    ``leave_one_out``: add the leave-one-category-out figures (key ``loco``, :func:`loco`).
    """
    from leadtime.data import read_anomaly_set

    anomaly_set = read_anomaly_set(root)
    reference = default_reference_dir() if reference is None else Path(reference)
    parts: dict[str, list[SeriesScore]] = {d: [] for d in detectors}
    streams: dict[str, dict[str, np.ndarray]] = {d: {} for d in detectors}
    per_series: dict[str, dict[str, float]] = {}
    seconds: dict[str, float] = {d: 0.0 for d in detectors}
    for key, series in anomaly_set.series.items():
        per_series[key] = {}
        for name in detectors:
            began = time.perf_counter()
            scores, floor = stream_scores(name, series)
            seconds[name] += time.perf_counter() - began
            streams[name][key] = scores
            part = score_series(series, scores, anomaly_set.windows[key], floor=floor)
            parts[name].append(part)
            per_series[key][name] = summarise([part])["f1"]
    samples = sum(len(s) for s in anomaly_set.series.values())
    nab = nab_set(anomaly_set.series, anomaly_set.windows)
    document = {
        "set": str(Path(root)),
        "series": len(anomaly_set.series),
        "samples": samples,
        "protocol": {
            "probation": PROBATION,
            "threshold": "max score over the probationary period after a warm-up of a third of it",
            "cooldown_minutes": COOLDOWN_S / 60,
            "precision": "detected windows / (detected windows + alarm episodes outside windows)",
            "nab": "NAB normalised score (0 null, 100 perfect) per profile, threshold optimised "
                   "over the set by NAB's optimiser; detectors' [0, 1] scores unchanged",
        },
        "detectors": {
            name: {**summarise(parts[name]), "us_per_sample": round(1e6 * seconds[name] / samples, 1),
                   **nab_figures(nab, streams[name])}
            for name in detectors
        },
        "nab_reference": reference_rows(reference, nab),
        "per_series_f1": per_series,
    }
    if leave_one_out:
        document["loco"] = loco(anomaly_set.series, anomaly_set.windows, streams)
    return document


def format_table(document: dict) -> str:
    """The figures as a plain-text table, NAB's published detectors beneath ours."""
    nab_head = f"{'nab_std':>8} {'nab_lowFP':>9} {'nab_lowFN':>9}"
    head = (f"{'detector':<18} {'precision':>9} {'recall':>7} {'f1':>6} {'delay_min':>9} "
            f"{'fa/day':>7} {'windows':>8}  {nab_head}")
    lines = [f"anomaly set {document['set']}: {document['series']} series, {document['samples']} samples",
             head, "-" * len(head)]

    def nab_cells(m: dict) -> str:
        return f"{m['nab_standard']:>8.1f} {m['nab_low_fp']:>9.1f} {m['nab_low_fn']:>9.1f}"

    for name, m in document["detectors"].items():
        delay = "-" if m["delay_minutes"] is None else f"{m['delay_minutes']:.0f}"
        fa_day = "-" if m["false_alarms_per_day"] is None else f"{m['false_alarms_per_day']:.3f}"
        lines.append(
            f"{name:<18} {m['precision']:>9.3f} {m['recall']:>7.3f} {m['f1']:>6.3f} {delay:>9} "
            f"{fa_day:>7} {m['detected']:>3}/{m['windows']:<4}  {nab_cells(m)}"
        )
    reference = document.get("nab_reference", {})
    if reference.get("detectors"):
        lines.append(f"NAB's published detectors, scored as above on their own outputs "
                     f"({reference['dir']}):")
        blank = f"{'-':>9} {'-':>7} {'-':>6} {'-':>9} {'-':>7} {'-':>8}"
        for name, m in reference["detectors"].items():
            lines.append(f"{'  ' + name:<18} {blank}  {nab_cells(m)}")
    lines.extend(reference.get("notes", []))
    lines.append("nab_*: NAB normalised score (0 = NAB's null detector, 100 = perfect) for the profiles "
                 "standard, reward_low_FP_rate, reward_low_FN_rate;\n"
                 "       threshold optimised over the whole set per profile, as NAB does")
    if "loco" in document:
        lines.append(format_loco(document["loco"]))
    return "\n".join(lines)


def format_loco(section: dict) -> str:
    """The leave-one-category-out figures, one block per direction."""
    head = (f"{'detector':<18} {'nab_std':>8} {'nab_lowFP':>9} {'nab_lowFN':>9} {'precision':>9} "
            f"{'recall':>7} {'f1':>6} {'windows':>8} {'fa':>4}   {'train: std':>10} {'f1':>6}")
    lines = ["", "leave one category out: " + section["protocol"]]
    for direction in section["directions"]:
        lines += ["", f"train {direction['train']} -> test {direction['test']}", head, "-" * len(head)]
        for name, m in direction["detectors"].items():
            lines.append(
                f"{name:<18} {m['nab_standard']:>8.1f} {m['nab_low_fp']:>9.1f} {m['nab_low_fn']:>9.1f} "
                f"{m['precision']:>9.3f} {m['recall']:>7.3f} {m['f1']:>6.3f} "
                f"{m['detected']:>3}/{m['windows']:<4} {m['false_alarms']:>4}   "
                f"{m['train']['nab_standard']:>10.1f} {m['train']['f1']:>6.3f}")
    return "\n".join(lines)
