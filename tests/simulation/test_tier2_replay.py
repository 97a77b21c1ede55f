"""Tier 2 in the replay: requests told to the in-flight ledger at arrival, start and finish, and
the loop's Tier 2 answer read from it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from simulation.bench import engine_spec
from simulation.config import derive_config
from simulation.occupancy import occupancy
from simulation.policies import HPA, Leadtime
from simulation.simulator import simulate


def long_jobs(days: int = 3, seed: int = 0) -> tuple[pd.Series, pd.DataFrame]:
    """Jobs of 10-60 minutes arriving through a daily cycle; the load is their occupancy at 5
    minutes; Tier 2's predictions are the true run times, with a +-20 % interval."""
    rng = np.random.default_rng(seed)
    t0 = pd.Timestamp("2024-03-01").timestamp()
    arrivals, t = [], t0
    while t < t0 + days * 86400:
        hour = (t - t0) / 3600 % 24
        t += rng.exponential(600 / (1.5 + np.sin(2 * np.pi * (hour - 6) / 24)))
        arrivals.append(t)
    arrivals = np.array(arrivals)
    run = rng.uniform(600, 3600, arrivals.size)
    edges = np.arange(t0, t0 + days * 86400 + 1, 300.0)
    series = pd.Series(occupancy(arrivals, run, edges),
                       index=pd.DatetimeIndex(pd.to_datetime(edges[:-1], unit="s"), freq="5min"),
                       name="jobs")
    requests = pd.DataFrame({"producer_id": "jobs", "arrival_s": arrivals, "start_s": arrivals,
                             "end_s": arrivals + run, "units": 1.0, "point": run,
                             "lower": 0.8 * run, "upper": 1.2 * run})
    return series, requests


def test_the_loop_reads_tier2_from_the_work_in_flight():
    series, requests = long_jobs()
    cfg = derive_config(series, pd.Timedelta("5min").total_seconds())
    spec = engine_spec().model_copy(update={"weights": {"tier1": 0.0, "tier2": 1.0, "tier3": 0.0}})
    policy = Leadtime(cfg, _NoTier1(), "jobs", series.index[0], spec, recalibrate=False,
                      requests=requests)
    simulate(series.to_numpy(float), cfg, policy, HPA(cfg), 20)
    last = policy.loop.latest
    now = last.decided_at
    tier2 = last.tiers["jobs"]["tier2"]
    assert tier2 is not None and "tier2" not in last.degraded
    running = ((requests.start_s < now) & (requests.end_s >= now)).sum()
    assert policy.feed.ledger.in_flight("jobs") == running  # finished ones have left
    # a perfect run-time prediction: at least what runs now, never more than what runs now
    # plus every arrival of the window (the projection adds the recent arrival rate)
    lead = cfg.spinup_s
    arriving = ((requests.arrival_s >= now) & (requests.arrival_s < now + lead)).sum()
    assert running <= tier2.point <= running + 3 * max(arriving, 1)
    assert tier2.lower <= tier2.point <= tier2.upper
    assert last.fleet.decisions["jobs"].prediction.weights == {"tier2": 1.0}


class _NoTier1:
    tier = "tier1"

    def answer(self, producers, now_s, level):
        from loop.sources import Answers

        return Answers({}, "no Tier 1 in this test")


def test_requests_without_a_prediction_are_not_announced():
    _, requests = long_jobs(days=1)
    requests.loc[requests.index[: len(requests) // 2], ["point", "lower", "upper"]] = np.nan
    from simulation.policies import RequestFeed

    feed = RequestFeed(requests, "jobs")
    feed.until(requests.end_s.max() + 1)
    assert feed.ledger.in_flight("jobs") == 0 and feed.ledger.late == 0
    announced = requests.point.notna().sum()
    assert len([e for e in feed.events if e[1] == 0]) == announced


@pytest.mark.parametrize("wait", [0.0, 900.0])
def test_a_queued_request_counts_from_its_start(wait):
    from models.tier2.inflight import InFlight

    ledger = InFlight(rate_span_s=300.0)  # arrivals counted over the window itself
    ledger.announce("p", 0.0, (600.0, 600.0, 600.0), job="a", start_s=wait)
    held = ledger.predict({"p": 300.0}, {"p": 1.0}, now=1.0)["p"].point
    # arrivals of the last window project one more unit over its mean run time (300 s of 600)
    assert held == pytest.approx((1.0 if wait == 0 else 0.0) + 300.0 / 300.0 * 1.0)


def test_a_queued_request_waits_from_the_earliest_moment_asked():
    """Work a queue still holds past its predicted run time is still to come: announced as
    queued it overlaps a request known to start inside the window; taken to have started at
    its arrival it would have ended long ago (counted only at the moment asked). Arrivals are
    counted over the last minute, where none fall, so nothing new is projected."""
    from models.tier2.inflight import InFlight

    def peak(queued: bool) -> float:
        ledger = InFlight(rate_span_s=60.0)
        ledger.announce("p", 0.0, (100.0, 100.0, 100.0), job="waiting", queued=queued)
        ledger.announce("p", 0.0, (100.0, 100.0, 100.0), job="later", start_s=150.0)
        return ledger.predict({"p": 60.0}, {"p": 1.0}, now=120.0)["p"].point

    assert peak(queued=True) == pytest.approx(2.0) and peak(queued=False) == pytest.approx(1.0)
    ledger = InFlight(rate_span_s=60.0)
    ledger.announce("p", 0.0, (100.0, 100.0, 100.0), job="waiting", queued=True)
    assert ledger.queued("p") == 1 and ledger.started("p", "waiting", 130.0)
    assert ledger.queued("p") == 0  # from its reported start on, as any request
    # held over [130, 230] from its reported start
    assert ledger.predict({"p": 60.0}, {"p": 1.0}, now=140.0)["p"].point == pytest.approx(1.0)


def test_a_resources_share_moves_with_its_producers_reports():
    """A request announced to its producer and, as ``owner``, to each resource's key (a share
    with its interval): the producer's start and finish move every share, counted once; a share
    forgotten unfinished is not a second dropped request."""
    from models.tier2.inflight import InFlight

    ledger = InFlight(rate_span_s=60.0, forget_after_s=1000.0)
    for key, units in (("db", 1.0), ("db/cpu", 4.0), ("db/memory", (16.0, 12.0, 20.0))):
        ledger.announce(key, 0.0, (100.0, 100.0, 100.0), units=units, job="j", queued=True,
                        owner=None if key == "db" else "db")
    assert ledger.owners() == ["db"] and ledger.producers() == ["db", "db/cpu", "db/memory"]
    assert ledger.started("db", "j", 30.0) and ledger.queued("db/memory") == 0
    held = ledger.predict({"db/memory": 10.0}, {"db/memory": 1.0}, now=70.0)["db/memory"]
    assert held.point == pytest.approx(16.0)  # from its reported start on, its 16 GiB (the
    # arrival left the rate's last minute: nothing new projected), its interval the bounds'
    assert (held.lower, held.upper) == pytest.approx((12.0, 20.0))
    assert ledger.waits_recorded("db/cpu") == 1  # the queue's wait, for each share's starts
    assert ledger.finished("db", "j", 130.0) and ledger.late == 0
    assert ledger.in_flight("db/cpu") == ledger.in_flight("db/memory") == 0
    assert not ledger.finished("db/cpu", "j") and ledger.late == 1
    for key in ("db", "db/cpu"):
        ledger.announce(key, 0.0, (10.0, 10.0, 10.0), job="lost",
                        owner=None if key == "db" else "db")
    ledger.predict({"db": 10.0, "db/cpu": 10.0}, {"db": 1.0, "db/cpu": 1.0}, now=5000.0)
    assert ledger.dropped == 1


def test_a_queued_request_starts_when_the_queues_record_says_it_may():
    """Twenty requests have waited 0, 50, ..., 950 s in the queue. A new one, asked about the
    next three minutes as it is announced, starts (of the waits longer than none: 50 to 950 s)
    after the 90 % quantile's 860 s for the lower bound and the median's 500 s for the point,
    both beyond the window, and after the 10 % quantile's 140 s for the upper, inside it; with
    too few waits recorded it starts at once, as before. Having waited 900 s, only the 950 s
    wait is longer: it starts 50 s on, in every bound. Arrivals are counted over a minute, where
    only the new request falls (its projected successors are the same in both ledgers)."""
    from models.tier2.inflight import InFlight

    def ledger(min_recorded: int) -> InFlight:
        out = InFlight(rate_span_s=60.0, min_recorded=min_recorded)
        for i in range(20):
            job = out.announce("p", -50_000.0 + i, (30.0, 30.0, 30.0), job=f"old{i}", queued=True)
            out.started("p", job, -50_000.0 + i + 50.0 * i)
            out.finished("p", job)
        out.announce("p", 0.0, (600.0, 600.0, 600.0), job="new", queued=True)
        return out

    learnt, fresh = (x.predict({"p": 180.0}, {"p": 1.0}, now=0.0)["p"] for x in (ledger(20),
                                                                             ledger(21)))
    assert learnt.lower == pytest.approx(fresh.lower - 1.0)
    assert learnt.point == pytest.approx(fresh.point - 1.0)
    assert learnt.upper == pytest.approx(fresh.upper)
    waited = ledger(20).predict({"p": 120.0}, {"p": 1.0}, now=900.0)["p"]
    assert waited.lower == pytest.approx(1.0)  # starts at 950 s, inside [900, 1020]
    odd = ledger(20)  # a start reported before its announcement, or days after, is not a wait
    odd.announce("p", 5_000.0, (30.0, 30.0, 30.0), job="early", queued=True)
    odd.announce("p", 5_000.0, (30.0, 30.0, 30.0), job="lost", queued=True)
    assert odd.started("p", "early", 4_000.0) and odd.started("p", "lost", 5_000.0 + 3 * 86400)
    assert odd.waits_recorded("p") == 20


def test_a_running_request_ends_when_the_run_times_seen_say_it_may():
    """Twenty-one requests predicted at 100 s ran 55, 65, ..., 255 s. One predicted at 100 s
    has run 150 s: of the recorded runs longer than 1.5 times their prediction (155 to 255 s),
    the median says it ends at 205 s, the 10 % quantile at 165 s and the 90 % at 245 s. A
    request scheduled to start at 200 s then overlaps it at the point and the upper bound, not
    at the lower. With too few runs recorded, a request running past its prediction is taken
    to end at once, as before; a queued one's run is not recorded (its start is unknown)."""
    from models.tier2.inflight import InFlight

    def ledger(min_runs: int) -> InFlight:
        out = InFlight(rate_span_s=60.0, min_recorded=min_runs)
        for i in range(21):
            start = -50_000.0 + 1000.0 * i
            out.announce("p", start, (100.0, 100.0, 100.0), job=f"old{i}")
            out.finished("p", f"old{i}", start + 55.0 + 10.0 * i)
        out.announce("p", -9_000.0, (100.0, 100.0, 100.0), job="q", queued=True)
        out.finished("p", "q", -8_000.0)
        out.announce("p", 0.0, (100.0, 100.0, 100.0), job="running")
        out.announce("p", 40.0, (100.0, 100.0, 100.0), start_s=200.0, job="next")
        return out

    learnt = ledger(21).predict({"p": 100.0}, {"p": 1.0}, now=150.0)["p"]
    assert (learnt.lower, learnt.point, learnt.upper) == pytest.approx((1.0, 2.0, 2.0))
    fresh = ledger(22).predict({"p": 100.0}, {"p": 1.0}, now=150.0)["p"]
    assert (fresh.lower, fresh.point, fresh.upper) == pytest.approx((1.0, 1.0, 1.0))


def test_new_work_arrives_at_the_last_hours_rate_with_poisson_bounds():
    """Six one-unit requests of 600 s, one every 600 s from 300 s, none in the last five
    minutes before 3600 s: a window of five minutes still expects new work at the rate since
    the first announcement (6 in 3300 s: 0.55 arrivals in the window), and its bounds are
    Poisson's 10 % and 90 % counts of arrivals (0 and 2), not the rate itself."""
    from models.tier2.inflight import InFlight

    ledger = InFlight()
    for i in range(6):
        ledger.announce("p", 300.0 + 600.0 * i, (600.0, 600.0, 600.0), job=f"r{i}")
        ledger.finished("p", f"r{i}")  # all done: only new work is left
    answer = ledger.predict({"p": 300.0}, {"p": 1.0}, now=3600.0)["p"]
    # each holds 600 s, so by the window's end new work holds 6 / 3300 x 300 units
    assert answer.point == pytest.approx(6 / 3300 * 300)
    assert answer.lower == pytest.approx(0.0) and answer.upper == pytest.approx(2.0)


@pytest.mark.parametrize("room", [10, 100_000])
def test_new_work_is_counted_over_the_time_the_record_covers(room):
    """One one-second request a second for 20 minutes: new work holds one unit, whether the
    record has room for the last 10 arrivals only or for all of them over a span (an hour)
    longer than the producer has been announcing; arrivals older than the span leave it."""
    from models.tier2.inflight import InFlight

    ledger = InFlight(max_jobs=room)
    for i in range(1200):
        ledger.announce("p", float(i), (1.0, 1.0, 1.0), job=f"r{i}")
        ledger.finished("p", f"r{i}")
    answer = ledger.predict({"p": 300.0}, {"p": 1.0}, now=1200.0)["p"]
    assert answer.point == pytest.approx(1.0, rel=0.01)
    assert answer.lower < answer.point < answer.upper
    ledger.predict({"p": 300.0}, {"p": 1.0}, now=1200.0 + 3600.0)
    assert ledger.predict({"p": 300.0}, {"p": 1.0}, now=1200.0 + 3600.0)["p"].point == 0.0


def test_the_frontier_hears_a_request_trace_through_tier2():
    """``bench frontier`` on requests: leadtime's points replay the requests through Tier 2
    (their run times known), the peers' stay what they were without them, and the same loop
    without Tier 2 is swept at the same knobs, as the ablation's Tier 1+3 recalibrated."""
    from sim_fixtures import daily_naive_factory

    from simulation.bench import WITHOUT_TIER2, frontier

    series, requests = long_jobs(days=9)
    cfg = derive_config(series, pd.Timedelta("5min").total_seconds())
    kwargs = {"factory": daily_naive_factory, "targets": (0.7,), "budgets": (1.0,)}
    heard = frontier(series, cfg, requests=requests, **kwargs)
    deaf = frontier(series, cfg, **kwargs)
    leadtime = ("leadtime", WITHOUT_TIER2)
    assert [r for r in heard if r["policy"] not in leadtime] == [
        r for r in deaf if r["policy"] not in leadtime]
    assert not any(r["policy"] == WITHOUT_TIER2 for r in deaf)  # a load trace has no Tier 2

    def points(rows, policy="leadtime"):
        return [(r["knob"], r["value"], r["slo_violation_pct"], r["instance_hours"])
                for r in rows if r["policy"] == policy]

    assert points(heard) != points(deaf)
    assert [p[:2] for p in points(heard, WITHOUT_TIER2)] == [p[:2] for p in points(heard)]
    assert points(heard, WITHOUT_TIER2) != points(heard)


@pytest.mark.slow
def test_tier2_predictions_come_from_fits_on_finished_requests_only(state, tmp_path,
                                                                      monkeypatch):
    """Each day's fit sees only requests that had finished before the day began, and predicts
    only that day's arrivals (real Feast features and CatBoost fits on a generated trace)."""
    from models.tier2 import evaluate
    from models.tier2.intent import IntentConfig
    from simulation.intent_replay import predict_requests
    from simulation.request_scenarios import consumer_jobs

    path = consumer_jobs(tmp_path / "trace", days=3)
    fits = []
    real = evaluate.fit_models

    def spy(data, config=None, **meta):  # the real fit, its training rows recorded
        train = data.frame[data.train]
        ends = train["event_timestamp"] + pd.to_timedelta(data.y[data.train], unit="s")
        fits.append((ends.max(), data.frame.loc[data.test, "event_timestamp"].min()))
        return real(data, config, **meta)

    monkeypatch.setattr(evaluate, "fit_models", spy)
    result = predict_requests(path, settings=state,
                              config=IntentConfig(iterations=30, depth=3, thread_count=1))
    assert result.fits == len(fits) >= 1
    for last_end, first_predicted in fits:
        assert last_end < first_predicted.floor("D")
    predicted = result.frame.dropna()
    first_day = pd.Timestamp(result.frame.arrival_s.min(), unit="s").floor("D").timestamp()
    assert (predicted.arrival_s >= first_day + 86400).all()  # nothing before the first fit
    assert (predicted.lower <= predicted.point).all() and (predicted.point <= predicted.upper).all()


def test_consumer_jobs_direct_is_the_same_requests_without_the_queue(tmp_path):
    """The no-queue variant keeps every request, with the same run time and units, and its
    replay starts each one when it is submitted."""
    from leadtime.data import read_request_trace
    from simulation.request_scenarios import REQUEST_SCENARIOS
    from simulation.traces import request_runs

    queued = request_runs(read_request_trace(REQUEST_SCENARIOS["consumer_jobs"](
        tmp_path / "q", days=2)))
    direct = request_runs(read_request_trace(REQUEST_SCENARIOS["consumer_jobs_direct"](
        tmp_path / "d", days=2)))
    assert len(direct) == len(queued) and (queued.start_s > queued.arrival_s).any()
    assert (direct.start_s == direct.arrival_s).all()
    assert np.allclose(direct.end_s - direct.start_s, queued.end_s - queued.start_s)
    assert np.allclose(direct.units, queued.units)


def test_a_job_trace_in_the_contracts_keys_alone_is_replayed_as_occupancy(tmp_path):
    """A job trace whose schema names only the input contract's keys (no ``wait``, no
    ``units``) and has no ``producer_id`` column: one producer named after the file, every job
    holding one unit from its submission for its run time; its extra categorical columns (a
    queue, an application) are features like any other."""
    from leadtime.data import read_request_trace
    from simulation.traces import read_demand, request_runs

    path = tmp_path / "jobs.csv"
    pd.DataFrame({
        "submit_time": ["2024-05-06 00:01:00", "2024-05-06 00:02:00", "2024-05-06 00:12:00"],
        "consumer_id": ["u1", "u2", "u1"], "queue": ["vc-a", "vc-b", "vc-a"],
        "application": ["train", "train", "notebook"], "gpus": [4, 1, 1],
        "duration": [1200.0, 300.0, 60.0],
    }).to_csv(path, index=False)
    path.with_suffix(".schema.yaml").write_text(
        "target: duration\ntarget_unit: seconds\ncategorical: [consumer_id, queue, application]\n"
        "numeric: [gpus]\ntime: submit_time\n")
    runs = request_runs(read_request_trace(path))
    assert (runs.producer_id == "jobs").all() and (runs.units == 1.0).all()
    assert (runs.start_s == runs.arrival_s).all()
    assert (runs.end_s - runs.start_s).tolist() == [1200.0, 300.0, 60.0]
    demand = read_demand(path)
    assert demand.reading == "occupancy" and demand.producers == ["jobs"]
    # 00:00-00:05: job 1 for 4 of the 5 minutes, job 2 for 3; 00:05-00:10: job 1 for 5, job 2
    # for 2 (it ends at 00:07); 00:10-00:15: job 1 for 5, job 3 for its one minute
    assert demand.series["jobs"].iloc[:3].round(6).tolist() == [1.4, 1.4, 1.2]


def test_consumer_jobs_contract_is_the_direct_trace_in_the_contracts_keys(tmp_path):
    """The rehearsal scenario: the direct trace's requests (same seed), one unit each, its schema
    naming only the contract's keys."""
    import yaml

    from leadtime.data import read_request_trace
    from simulation.request_scenarios import consumer_jobs_contract, consumer_jobs_direct
    from simulation.traces import request_runs

    path = consumer_jobs_contract(tmp_path / "c", days=2, seed=3)
    schema = yaml.safe_load(path.with_suffix(".schema.yaml").read_text())
    assert set(schema) == {"target", "target_unit", "categorical", "numeric", "time"}
    jobs = request_runs(read_request_trace(path))
    direct = request_runs(read_request_trace(consumer_jobs_direct(tmp_path / "d", days=2,
                                                                  seed=3)))
    assert (jobs.units == 1.0).all() and (direct.units > 1.0).any()
    assert np.allclose(jobs.end_s - jobs.start_s, direct.end_s - direct.start_s)
    assert (jobs.producer_id == "consumer_jobs_contract").all()
