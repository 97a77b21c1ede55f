"""Rolling-origin backtest of the Tier 1 forecasters.

For each daily cut-off, every model is fitted on the ``history_s`` strictly before it and
forecasts the next ``horizon_s`` seconds; the forecast is scored against what happened. The first
``warmup_cutoffs`` are not scored: they give the conformal interval calibration its first
out-of-sample errors and the champion choice its first scores. At every later cut-off *k*, each
model's intervals are calibrated on its errors before *k*, and the per-producer **champion** is
the model with the best mean WIS before *k*: nothing is chosen or calibrated on the day it is
scored on. Every model is scored on the same cut-offs.

Metrics (per producer, model and cut-off):
* ``wis``: weighted interval score (Bracher et al. 2021; the median and the 80% and 95%
  intervals) over the same scale as MASE: a proper score that rewards accuracy *and* honest
  intervals, and the criterion that chooses the champion;
* ``mase``: mean absolute error over the in-sample MAE of the one-day seasonal naive;
* ``smape``: mean of 200·|y−ŷ|/(|y|+|ŷ|) in percent (steps where both are 0 are skipped);
* ``coverage_80`` / ``coverage_95``: share of actual values inside the interval;
* ``width_80`` / ``width_95``: mean interval width relative to the mean actual load;
* ``fit_seconds``: wall time of the fit.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from leadtime.config import TIER1_DEFAULTS
from models.tier1.forecasters import DAY, LEVELS, conformal_offsets, make_forecaster, widen

MODEL_NAMES = ("seasonal_naive", "prophet", "mstl")
METRICS = ("wis", "mase", "smape", "coverage_80", "coverage_95", "width_80", "width_95", "fit_seconds")
CHAMPION = "champion"


@dataclass(frozen=True)
class BacktestConfig:
    horizon_s: float = TIER1_DEFAULTS.horizon_s
    cutoffs: int = TIER1_DEFAULTS.backtest_cutoffs  # scored cut-offs
    warmup_cutoffs: int = 3  # earlier cut-offs that only calibrate intervals and choose
    aci_step: float = 0.5  # adaptive conformal step (0 = plain split conformal)
    history_s: float = TIER1_DEFAULTS.history_s  # what each fit sees
    models: tuple[str, ...] = MODEL_NAMES
    min_history_s: float = 2 * 86400.0  # the first cut-off is this long after the first day


def cutoff_times(series: pd.Series, config: BacktestConfig) -> list[pd.Timestamp]:
    """The last ``warmup_cutoffs + cutoffs`` midnights whose full horizon lies inside the series."""
    observed = series.dropna().index
    if observed.empty:
        return []
    first = observed[0].normalize() + pd.Timedelta(seconds=config.min_history_s)
    native = pd.Timedelta(series.index.freq) if series.index.freq else pd.Timedelta(0)
    last = (observed[-1] + native - pd.Timedelta(seconds=config.horizon_s)).normalize()
    days = pd.date_range(first, last, freq="D")
    return list(days[-(config.warmup_cutoffs + config.cutoffs):])


def required_history_s(config: BacktestConfig) -> float:
    """The shortest span (seconds) a series must cover for every cut-off of the backtest.

    The first cut-off is ``min_history_s`` after the first observation's midnight, the
    ``warmup_cutoffs + cutoffs`` cut-offs are daily, and the last one needs a full
    ``horizon_s`` after it (see :func:`cutoff_times`).

    >>> required_history_s(BacktestConfig(cutoffs=2, warmup_cutoffs=3, min_history_s=2 * 86400)) / 86400
    7.0
    """
    days = config.warmup_cutoffs + config.cutoffs - 1
    return config.min_history_s + days * 86400.0 + config.horizon_s


def history_shortfall(series: pd.Series, config: BacktestConfig) -> str | None:
    """Why ``series`` is too short for the backtest (None when it is long enough).

    Checked before anything is fitted: a backtest with fewer cut-offs than configured has no
    scored champion, hence no score to promote on.
    """
    need = config.warmup_cutoffs + config.cutoffs
    have = len(cutoff_times(series, config))
    if have >= need:
        return None
    observed = series.dropna().index
    span = (observed[-1] - observed[0]) if len(observed) else pd.Timedelta(0)
    return (f"{series.name} has {round(span / pd.Timedelta(days=1), 2):g} days of history "
            f"({have} of {need} cut-offs)")


def history_requirement(config: BacktestConfig) -> str:
    """The minimum history of :func:`required_history_s`, spelled out for an error message."""
    need_s = required_history_s(config)
    hours = int(config.horizon_s / 3600)
    return (f"the backtest needs at least {need_s / 86400:g} days of history: "
            f"{config.min_history_s / 86400:g} days before the first cut-off, "
            f"{config.warmup_cutoffs} warm-up + {config.cutoffs} scored daily cut-offs "
            f"and a {hours} h horizon after the last (fewer cut-offs: --cutoffs)")


def history_before(series: pd.Series, cutoff: pd.Timestamp, history_s: float) -> pd.Series:
    """The training window: strictly before ``cutoff``, at most ``history_s`` long."""
    start = cutoff - pd.Timedelta(seconds=history_s)
    return series[(series.index < cutoff) & (series.index >= start)]


def score(actual: pd.Series, forecast: pd.DataFrame, scale: float) -> dict[str, float]:
    """Point and interval metrics of one forecast against what happened (NaN actuals skipped)."""
    mask = actual.notna().to_numpy()
    y = actual.to_numpy()[mask]
    f = forecast[mask]
    if len(y) == 0:
        return {m: np.nan for m in METRICS if m != "fit_seconds"}
    error = np.abs(y - f["point"].to_numpy())
    denominator = np.abs(y) + np.abs(f["point"].to_numpy())
    nonzero = denominator > 0
    level = max(float(np.mean(np.abs(y))), 1e-12)
    out = {
        "mase": float(error.mean() / scale) if scale > 0 else np.nan,
        "smape": float(np.mean(200 * error[nonzero] / denominator[nonzero])) if nonzero.any() else 0.0,
    }
    interval_scores = 0.0
    for lvl in (80, 95):
        lower, upper = f[f"lower_{lvl}"].to_numpy(), f[f"upper_{lvl}"].to_numpy()
        out[f"coverage_{lvl}"] = float(np.mean((y >= lower) & (y <= upper)))
        out[f"width_{lvl}"] = float(np.mean(upper - lower) / level)
        alpha = 1 - lvl / 100
        interval_score = (upper - lower) + 2 / alpha * (np.maximum(lower - y, 0) + np.maximum(y - upper, 0))
        interval_scores += alpha / 2 * interval_score
    wis = (0.5 * error + interval_scores) / 2.5  # K=2 intervals plus the median
    out["wis"] = float(wis.mean() / scale) if scale > 0 else np.nan
    return out


def mase_scale(history: pd.Series) -> float:
    """In-sample MAE of the one-day seasonal naive on the training window."""
    steps_per_day = int(DAY / pd.Timedelta(history.index.freq or history.index.to_series().diff().mode().iloc[0]))
    diffs = (history - history.shift(steps_per_day)).abs().dropna()
    if diffs.empty:
        diffs = history.diff().abs().dropna()
    return float(diffs.mean()) if not diffs.empty else np.nan


def backtest_producer(series: pd.Series, config: BacktestConfig = BacktestConfig()) -> pd.DataFrame:
    """Score every model at every cut-off for one producer; one row per (model, cut-off).

    Intervals at cut-off *k* are widened by the conformal offsets learned from the same model's
    out-of-sample errors at cut-offs before *k* (none at the first), so coverage is honest too.
    The offsets from all cut-offs are returned in ``offsets_80`` / ``offsets_95`` of the last row
    of each model, for the production fit.
    """
    producer = str(series.name)
    runs: dict[str, list[dict]] = {name: [] for name in config.models}
    for cutoff in cutoff_times(series, config):
        history = history_before(series, cutoff, config.history_s)
        actual = series[(series.index >= cutoff)
                        & (series.index < cutoff + pd.Timedelta(seconds=config.horizon_s))]
        if history.notna().sum() < 2 or actual.notna().sum() == 0:
            continue
        scale = mase_scale(history)
        for name in config.models:
            started = time.perf_counter()
            try:
                model = make_forecaster(name).fit(history)
                forecast, error = model.predict(actual.index), None
            except Exception as exc:  # a model failing on one series must not sink the others
                forecast, error = None, f"{type(exc).__name__}: {exc}"
            runs[name].append({"cutoff": cutoff, "actual": actual, "forecast": forecast,
                               "scale": scale, "fit_seconds": time.perf_counter() - started,
                               "error": error})
    rows = []
    for name, fits in runs.items():
        targets = {level: float(level) for level in LEVELS}
        for k, run in enumerate(fits):
            calibration = [r for r in fits[:k] if r["forecast"] is not None]
            offsets = calibration_offsets(calibration, targets)
            row = {"producer_id": producer, "model": name, "cutoff": run["cutoff"],
                   "scored": k >= config.warmup_cutoffs,
                   "fit_seconds": run["fit_seconds"], "error": run["error"]}
            if run["forecast"] is None:
                row |= {m: np.nan for m in METRICS if m != "fit_seconds"}
            else:
                row |= score(run["actual"], widen(run["forecast"], offsets), run["scale"])
                targets = adapt_targets(targets, row, config.aci_step)
            if k == len(fits) - 1:
                row["offsets"] = calibration_offsets(
                    [r for r in fits if r["forecast"] is not None], targets
                )
            rows.append(row)
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    return pd.concat([frame, champion_rows(frame)], ignore_index=True)


def calibration_offsets(runs: list[dict], targets: dict[int, float]) -> dict[int, tuple[float, float]]:
    """Conformal offsets from earlier out-of-sample forecasts (empty when there are none)."""
    if not runs:
        return {}
    actual = np.concatenate([r["actual"].to_numpy(dtype=float) for r in runs])
    forecast = pd.concat([r["forecast"] for r in runs], ignore_index=True)
    return conformal_offsets(actual, forecast, targets)


def adapt_targets(targets: dict[int, float], row: dict, step: float) -> dict[int, float]:
    """Adaptive conformal inference (Gibbs & Candes 2021), one update per forecast day.

    A day covered less than the nominal level raises the next day's calibration target by
    ``step`` times the shortfall (and lowers it after over-coverage), which keeps long-run
    coverage near nominal when the series drifts.
    """
    out = {}
    for level, target in targets.items():
        realised = 100 * row.get(f"coverage_{level}", np.nan)
        shift = step * (level - realised) if np.isfinite(realised) else 0.0
        out[level] = float(np.clip(target + shift, 50.0, 99.5))
    return out


def champion_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """The honest per-producer champion: at each cut-off, the model best on earlier cut-offs.

    The first cut-off has no earlier scores, so it only serves to choose.
    """
    out = []
    for _producer, rows in frame.groupby("producer_id"):
        cutoffs = sorted(rows["cutoff"].unique())
        for k, cutoff in enumerate(cutoffs[1:], start=1):
            earlier = rows[rows["cutoff"].isin(cutoffs[:k])]
            choice = best_model(earlier)
            today = rows[(rows["cutoff"] == cutoff) & (rows["model"] == choice)]
            if not today.empty:
                out.append(today.iloc[0].to_dict() | {"model": CHAMPION, "chosen": choice})
    return pd.DataFrame(out)


def best_model(rows: pd.DataFrame) -> str:
    """The model with the lowest mean WIS in ``rows`` (ties: the simpler model, listed first)."""
    means = rows.groupby("model", sort=False)["wis"].mean().dropna()
    means = means.drop(CHAMPION, errors="ignore")
    if means.empty:
        return MODEL_NAMES[0]
    return str(means.idxmin())


def scored(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows on the scored cut-offs (each producer's first ``warmup_cutoffs`` only calibrate)."""
    return frame[frame["scored"].astype(bool)]


def summarise(frame: pd.DataFrame) -> dict[str, dict[str, float]]:
    """Mean of each metric per model over scored (producer, cut-off) pairs."""
    rows = scored(frame)
    summary = {}
    for model, group in rows.groupby("model", sort=False):
        summary[str(model)] = {m: _mean(group[m]) for m in METRICS}
    return summary


def final_choice(frame: pd.DataFrame) -> dict[str, str]:
    """Per producer, the model to fit for production: best mean WIS over all cut-offs."""
    models = frame[frame["model"] != CHAMPION]
    return {str(p): best_model(rows) for p, rows in models.groupby("producer_id")}


def choice_basis(frame: pd.DataFrame) -> dict[str, dict[str, float]]:
    """Per producer, each model's mean WIS over all cut-offs, the warm-up ones included: what
    :func:`final_choice` ranks (the scored table covers the later cut-offs only, so it can
    rank the models differently)."""
    models = frame[frame["model"] != CHAMPION]
    return {str(p): {str(m): round(float(w), 4)
                     for m, w in rows.groupby("model", sort=False)["wis"].mean().dropna().items()}
            for p, rows in models.groupby("producer_id")}


def recipe_metrics(frame: pd.DataFrame, recipe: dict[str, str]) -> dict[str, float]:
    """Each of :data:`METRICS` that the per-producer choice ``recipe`` earns on this backtest.

    Used to compare a candidate with the registry's champion on the same backtest (scored
    cut-offs only); producers the recipe does not cover are scored with the seasonal naive.
    """
    rows = scored(frame)
    picks = [
        rows[(rows["producer_id"] == p) & (rows["model"] == recipe.get(p, MODEL_NAMES[0]))]
        for p in rows["producer_id"].unique()
    ]
    chosen = pd.concat(picks) if picks else pd.DataFrame(columns=list(METRICS))
    return {m: _mean(chosen[m]) if m in chosen else float("nan") for m in METRICS}


def _mean(values: pd.Series) -> float:
    values = pd.to_numeric(values, errors="coerce").dropna()
    return float(values.mean()) if not values.empty else float("nan")
