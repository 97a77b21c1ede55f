"""The fitted Tier 1 baseline as one MLflow model: fit, plot, log, register, promote.

``BaselineBundle`` holds one fitted champion forecaster per producer. It is logged as an MLflow
pyfunc (``pyfunc.py``, MLflow's "models from code") that, given ``producer_id`` and ``timestamp`` rows, returns
``point``, ``lower`` and ``upper`` without refitting, and registered as ``leadtime-baseline``.
The ``champion`` alias moves only when the new version is no worse than the current champion on
the same backtest (see ``models.registry.should_promote``).
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from leadtime.config import ENGINE_DEFAULTS
from models.tier1.backtest import CHAMPION, METRICS, recipe_metrics, scored, summarise
from models.tier1.forecasters import BaseForecaster, make_forecaster

BUNDLE_FILE = "baseline_bundle.joblib"


@dataclass
class BaselineBundle:
    """One fitted forecaster per producer, plus what was chosen and why."""

    forecasters: dict[str, BaseForecaster]
    choices: dict[str, str]
    fitted_until: dict[str, str] = field(default_factory=dict)
    steps: dict[str, str] = field(default_factory=dict)  # sampling interval; default its model's
    _tables: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_tables"] = {}  # a cache, not part of the model
        return state

    def __setstate__(self, state: dict) -> None:
        state.setdefault("_tables", {})
        state.setdefault("steps", {})
        self.__dict__.update(state)

    def window_peak(self, producer: str, start: pd.Timestamp, window_s: float,
                    level: int = ENGINE_DEFAULTS.level,
                    max_ahead_hours: float = 48.0) -> tuple[float, float, float] | str:
        """Tier 1's one question: the peak of (point, lower, upper) over ``[start, start + window)``.

        The forecast is read on the producer's own grid (its sampling interval; a grid point
        stands for the interval it opens) and the maximum of each column over every interval
        overlapping the window is returned. The window is the spin-up lead time plus one
        decision interval (:attr:`leadtime.engine.ProducerConfig.window_s`): instances removed
        at ``start`` are gone at once, those requested serve from one lead time on, and the
        next decision's only from one decision interval later, so the fleet must carry every
        interval until then. On an hourly grid with a 5-minute lead and hourly decisions that
        is the current hour and the next one. Returns ``"stale"`` when the window ends more
        than ``max_ahead_hours`` after the fitted history, ``"unknown"`` for a producer the
        bundle has no model of. The forecast table is computed once per producer and level,
        then each question is a slice.
        """
        if level not in (80, 95):
            raise ValueError(f"level must be 80 or 95, not {level}")
        forecaster = self.forecasters.get(str(producer))
        if forecaster is None:
            return "unknown"
        start = pd.Timestamp(start)
        limit, grid, values = self._horizon(str(producer), forecaster, level, max_ahead_hours)
        if (start.tzinfo is None) != (limit.tzinfo is None):
            raise TypeError(f"window start {start} and forecast horizon {limit} must both have "
                            "a time zone or both have none")
        end_ns = start.value + pd.Timedelta(seconds=float(window_s)).value  # as nanoseconds:
        if end_ns > limit.value:  # a pass asks every producer, so no Timestamp arithmetic
            return "stale"
        step = int(grid[1] - grid[0]) if len(grid) > 1 else 0
        first = int(np.searchsorted(grid, start.value - step, side="right"))  # open at start
        last = int(np.searchsorted(grid, end_ns, side="left"))  # opened before the end
        if last <= first:
            last = min(first + 1, len(grid))
        if first >= len(grid):
            return "stale"
        peak = values[first:last].max(axis=0)
        return float(peak[0]), float(peak[1]), float(peak[2])

    def _horizon(self, producer: str, forecaster: BaseForecaster, level: int,
                 max_ahead_hours: float) -> tuple[pd.Timestamp, np.ndarray, np.ndarray]:
        """The latest window end the producer's forecast answers for, and its table (the grid
        in nanoseconds, the values): found once per producer, level and horizon."""
        key = ("horizon", producer, level, max_ahead_hours)
        cached = self._tables.get(key)
        if cached is None:
            fitted = self.fitted_until.get(producer)  # not .get(p, default): a custom
            if fitted is None:  # forecaster (tests) has no last_timestamp to fall back on
                fitted = forecaster.last_timestamp
            fitted = pd.Timestamp(fitted)
            limit = fitted + pd.Timedelta(hours=max_ahead_hours)
            grid, values = self._table(producer, forecaster, level, fitted, limit)
            cached = self._tables[key] = (limit, grid.view("i8"), values)
        return cached

    def _table(self, producer: str, forecaster: BaseForecaster, level: int,
               fitted: pd.Timestamp, limit: pd.Timestamp) -> tuple[np.ndarray, np.ndarray]:
        key = (producer, level)
        cached = self._tables.get(key)
        if cached is None:
            step = pd.Timedelta(self.steps[producer]) if producer in self.steps else forecaster.native
            grid = pd.date_range(fitted + step, limit + step, freq=step)
            forecast = forecaster.predict(grid)
            values = np.column_stack([forecast["point"].to_numpy(float),
                                      forecast[f"lower_{level}"].to_numpy(float),
                                      forecast[f"upper_{level}"].to_numpy(float)]).clip(min=0.0)
            cached = self._tables[key] = (grid.asi8.view("M8[ns]"), values)
        return cached

    def serve(self, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        """The registered pyfunc's ``predict`` (``models/tier1/pyfunc.py``): rows of
        (producer_id, timestamp) in; with ``params["window_s"] > 0`` each row's answer is the
        peak over ``[timestamp, timestamp + window_s)`` (the decision loop's question,
        :meth:`window_peak`), else
        the forecast at the timestamp; ``level`` and ``max_ahead_hours`` from ``params``."""
        params = params or {}
        level = int(params.get("level", ENGINE_DEFAULTS.level))
        ahead = float(params.get("max_ahead_hours", 48.0))
        window_s = float(params.get("window_s", 0.0))
        if window_s > 0:
            return self.predict_window(model_input["producer_id"], model_input["timestamp"],
                                       window_s, level=level, max_ahead_hours=ahead)
        return self.predict(model_input["producer_id"], model_input["timestamp"], level=level,
                            max_ahead_hours=ahead)

    def predict_window(self, producer_ids: pd.Series, starts: pd.Series, window_s: float,
                       level: int = ENGINE_DEFAULTS.level,
                       max_ahead_hours: float = 48.0) -> pd.DataFrame:
        """:meth:`window_peak` for each (producer, window start) row, in input order."""
        rows = []
        for producer, start in zip(producer_ids.astype(str), pd.to_datetime(starts)):
            answer = self.window_peak(producer, start, window_s, level, max_ahead_hours)
            if isinstance(answer, str):
                rows.append((producer, start, np.nan, np.nan, np.nan,
                             "stale" if answer == "stale" else ""))
            else:
                rows.append((producer, start, *answer, self.choices.get(producer, "")))
        return pd.DataFrame(rows, columns=["producer_id", "timestamp", "point", "lower", "upper",
                                           "model"])

    def predict(self, producer_ids: pd.Series, timestamps: pd.Series,
                level: int = ENGINE_DEFAULTS.level,
                max_ahead_hours: float = 48.0) -> pd.DataFrame:
        """Point and ``level``% bounds for each (producer, timestamp) row, in input order.

        A timestamp more than ``max_ahead_hours`` after the producer's fitted history gets NaN
        and ``model == "stale"``: a daily model that has not been refit must not pretend.
        """
        if level not in (80, 95):
            raise ValueError(f"level must be 80 or 95, not {level}")
        frame = pd.DataFrame({"producer_id": producer_ids.astype(str).to_numpy(),
                              "timestamp": pd.to_datetime(timestamps).to_numpy()})
        out = pd.DataFrame(index=frame.index, columns=["point", "lower", "upper"], dtype=float)
        model = pd.Series("", index=frame.index, dtype=object)
        for producer, rows in frame.groupby("producer_id", sort=False):
            forecaster = self.forecasters.get(str(producer))
            if forecaster is None:
                continue  # unknown producer: NaN, and the caller sees model == ""
            if str(producer) in self.fitted_until:
                limit = pd.Timestamp(self.fitted_until[str(producer)])
                stale = rows["timestamp"] > limit + pd.Timedelta(hours=max_ahead_hours)
                model.loc[rows.index[stale.to_numpy()]] = "stale"
                rows = rows[~stale]
                if rows.empty:
                    continue
            forecast = forecaster.predict(pd.DatetimeIndex(rows["timestamp"]))
            out.loc[rows.index, "point"] = forecast["point"].to_numpy()
            out.loc[rows.index, "lower"] = forecast[f"lower_{level}"].to_numpy()
            out.loc[rows.index, "upper"] = forecast[f"upper_{level}"].to_numpy()
            model.loc[rows.index] = self.choices[str(producer)]
        return frame.assign(**{c: out[c].astype(float) for c in out.columns}, model=model)


def fit_champion(series: pd.Series, model_name: str, offsets: dict, history_s: float) -> BaseForecaster:
    """Fit the chosen model on the latest ``history_s``, with the backtest's conformal offsets."""
    history = series[series.index >= series.index[-1] - pd.Timedelta(seconds=history_s)]
    forecaster = make_forecaster(model_name).fit(history)
    forecaster.calibrator.offsets = dict(offsets or {})
    return forecaster


def final_offsets(frame: pd.DataFrame, producer: str, model_name: str) -> dict:
    """The conformal offsets the backtest learned for this producer and model (all cut-offs)."""
    rows = frame[(frame["producer_id"] == producer) & (frame["model"] == model_name)]
    if "offsets" not in rows or rows["offsets"].dropna().empty:
        return {}
    return rows["offsets"].dropna().iloc[-1]


# --- MLflow -------------------------------------------------------------------------------


PYFUNC_CODE = Path(__file__).resolve().parent / "pyfunc.py"


def input_example() -> pd.DataFrame:
    return pd.DataFrame({"producer_id": ["p"], "timestamp": [pd.Timestamp("2024-01-01")]})


def signature():
    from mlflow.models import infer_signature

    example = input_example()
    output = pd.DataFrame({"producer_id": ["p"], "timestamp": [pd.Timestamp("2024-01-01")],
                           "point": [1.0], "lower": [0.5], "upper": [1.5], "model": ["prophet"]})
    return infer_signature(example, output,
                           params={"level": 80, "max_ahead_hours": 48.0, "window_s": 0.0})


@dataclass(frozen=True)
class Registration:
    run_id: str
    version: str
    promoted: bool
    reason: str
    candidate_score: float
    champion_score: float | None


def load_champion(name: str):
    """(pyfunc, version) of the Tier 1 champion; LookupError when there is none."""
    import mlflow

    from models.registry import champion_version, model_uri

    version = champion_version(name)
    if version is None:
        raise LookupError(f"no champion of {name!r} in the registry")
    return mlflow.pyfunc.load_model(model_uri(name)), str(version.version)


def champion_recipe(name: str) -> dict[str, str] | None:
    """The per-producer model choice of the registry's current champion, if any."""
    from models.registry import champion_version

    version = champion_version(name)
    if version is None:
        return None
    recipe = version.tags.get("recipe")
    return json.loads(recipe) if recipe else None


def log_and_register(
    bundle: BaselineBundle,
    backtest: pd.DataFrame,
    *,
    name: str,
    experiment: str,
    params: dict,
    plot_path: Path | None,
    flow_run_id: str | None = None,
) -> Registration:
    """Track the fit as an MLflow run, register the pyfunc, and move the aliases.

    With ``flow_run_id`` the version is tagged ``flow_run_id`` and a retry of the same flow run
    reuses the version it already registered instead of adding another: one flow run, at most
    one version. A candidate without a finite backtest score is refused before anything is
    logged, so it never lands in the registry.
    """
    from models.registry import FLOW_RUN_TAG, decide_alias, versions_of_flow_run

    summary = summarise(backtest)
    candidate = summary.get(CHAMPION, {}).get("wis", float("nan"))
    if candidate is None or not np.isfinite(candidate):
        raise ValueError("the backtest has no scored champion (history too short?): "
                         "nothing to register")
    recipe = champion_recipe(name)
    existing = versions_of_flow_run(name, flow_run_id) if flow_run_id else []
    if existing:  # a retry of this flow run: the version is there already
        version, run_id = str(existing[0].version), existing[0].run_id
        if _is_champion(name, version):  # promoted before the attempt failed: done
            return Registration(run_id, version, True,
                                existing[0].tags.get("promotion", "promoted by an earlier attempt"),
                                candidate, None)
    else:
        version, run_id = _log_and_register(bundle, backtest, summary, name=name,
                                            experiment=experiment, params=params,
                                            plot_path=plot_path,
                                            tags={FLOW_RUN_TAG: flow_run_id} if flow_run_id else {})
    champion_metrics = recipe_metrics(backtest, recipe) if recipe is not None else {}
    champion_score = champion_metrics.get("wis")
    promotion = decide_alias(name, version, candidate, champion_score, metric="backtest WIS",
                             review=_review(summary.get(CHAMPION, {}), champion_metrics, bundle,
                                            run_id, plot_path))
    return Registration(run_id, version, promotion.promoted, promotion.reason,
                        candidate, champion_score)


REVIEWED_METRICS = {"mase": "backtest MASE", "coverage_80": "80 % coverage (target 0.80)",
                    "coverage_95": "95 % coverage (target 0.95)", "width_80": "80 % width"}


def _review(candidate: dict, champion: dict, bundle: BaselineBundle, run_id: str,
            plot_path: Path | None):
    """The version description's extra rows: the other backtest metrics, the recipe, the run."""
    import mlflow

    from models.registry import Review

    recipe = ", ".join(f"{p}: {m}" for p, m in sorted(bundle.choices.items()))
    artifacts = ["backtest.csv"]
    if plot_path is not None and Path(plot_path).exists():
        artifacts.append(f"plots/{Path(plot_path).name}")
    return Review(
        scores={label: (candidate.get(m), champion.get(m)) for m, label in REVIEWED_METRICS.items()},
        run_id=run_id, experiment_id=mlflow.get_run(run_id).info.experiment_id,
        artifacts=tuple(artifacts),
        notes=("Both columns are scored on this version's backtest (same data, same cut-offs).",
               f"Recipe (per producer): {recipe}." if recipe else "Recipe: none."))


def _is_champion(name: str, version: str) -> bool:
    from models.registry import champion_version

    champion = champion_version(name)
    return champion is not None and str(champion.version) == str(version)


def _log_and_register(bundle: BaselineBundle, backtest: pd.DataFrame, summary: dict, *,
                      name: str, experiment: str, params: dict, plot_path: Path | None,
                      tags: dict[str, str]) -> tuple[str, str]:
    """Log the run and its pyfunc, then register one version with ``tags``; (version, run id).

    The version is created with its tags in one call, so it is never without its
    ``flow_run_id`` (a retry can always find it).
    """
    import joblib
    import mlflow

    from models.registry import use_experiment

    use_experiment(experiment)
    with mlflow.start_run(run_name=f"baseline-{time.strftime('%Y%m%d-%H%M%S')}") as run:
        mlflow.log_params(params | {"producers": len(bundle.forecasters)})
        for model_name, metrics in summary.items():
            mlflow.log_metrics({f"{model_name}.{k}": v for k, v in metrics.items() if np.isfinite(v)})
        per_producer = producer_table(backtest)
        for producer, metrics in per_producer.iterrows():
            safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in str(producer))
            mlflow.log_metrics({f"producer.{safe}.{k}": float(v) for k, v in metrics.items()
                                if isinstance(v, (int, float)) and np.isfinite(v)})
        with tempfile.TemporaryDirectory() as tmp:
            bundle_path = Path(tmp) / BUNDLE_FILE
            joblib.dump(bundle, bundle_path)
            table_path = Path(tmp) / "backtest.csv"
            backtest.drop(columns=["offsets"], errors="ignore").to_csv(table_path, index=False)
            mlflow.log_artifact(str(table_path))
            if plot_path is not None and plot_path.exists():
                mlflow.log_artifact(str(plot_path), artifact_path="plots")
            info = mlflow.pyfunc.log_model(
                name="baseline",
                python_model=str(PYFUNC_CODE),
                artifacts={"bundle": str(bundle_path)},
                signature=signature(),
                input_example=input_example(),
                code_paths=[str(Path(__file__).resolve().parents[1])],
                pip_requirements=_requirements(),
            )
        registered = mlflow.register_model(info.model_uri, name,
                                           tags=tags | {"recipe": json.dumps(bundle.choices)})
        version = str(registered.version)
        mlflow.set_tag("registered_version", version)
    return version, run.info.run_id


def producer_table(backtest: pd.DataFrame) -> pd.DataFrame:
    """Per producer: the champion's scored metrics and the chosen model."""
    rows = scored(backtest)
    rows = rows[rows["model"] == CHAMPION]
    return rows.groupby("producer_id")[[m for m in METRICS]].mean()


def _requirements() -> list[str]:
    from importlib.metadata import version

    return [f"{pkg}=={version(pkg)}" for pkg in
            ("mlflow", "pandas", "numpy", "prophet", "statsforecast", "joblib")]


# --- plots --------------------------------------------------------------------------------


def plot_forecast(series: pd.Series, forecaster: BaseForecaster, path: Path, days_back: int = 3,
                  horizon_s: float = 24 * 3600.0) -> Path:
    """Recent load and the forecast of the next ``horizon_s`` seconds (default a day) with its
    80% and 95% bands, saved as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    end = series.index[-1]
    recent = series[series.index > end - pd.Timedelta(days=days_back)]
    step = pd.Timedelta(series.index.freq or recent.index.to_series().diff().mode().iloc[0])
    future = pd.date_range(end + step, end + pd.Timedelta(seconds=horizon_s), freq=step)
    forecast = forecaster.predict(future)
    fig, ax = plt.subplots(figsize=(11, 4))
    ax.plot(recent.index, recent.to_numpy(), color="0.3", lw=0.7, label="observed load")
    ax.fill_between(future, forecast["lower_95"], forecast["upper_95"], color="tab:blue",
                    alpha=0.15, label="95% interval")
    ax.fill_between(future, forecast["lower_80"], forecast["upper_80"], color="tab:blue",
                    alpha=0.3, label="80% interval")
    ax.plot(future, forecast["point"], color="tab:blue", lw=1.2, label=f"{forecaster.name} forecast")
    ax.set_title(f"{series.name}: next {int(horizon_s / 3600)} h ({forecaster.name})")
    ax.set_ylabel("load")
    ax.legend(loc="upper left", fontsize=8)
    fig.autofmt_xdate()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
