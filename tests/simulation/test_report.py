"""The HTML report of ``bench autoscale``: self-contained, bounded, and rendered by a real browser."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    """A real bench on a generated 2-producer, 3-day trace at 15 minutes (seasonal naive: fast
    daily fits; 2 days scored)."""
    from simulation.bench import run_bench
    from simulation.generate import write_load_trace

    trace = write_load_trace(tmp_path_factory.mktemp("trace") / "load.csv", producers=2, days=3,
                             interval="15min")
    return run_bench(trace, model="seasonal_naive", history_s=2 * 86400.0)


@pytest.fixture(scope="module")
def report(bench, tmp_path_factory) -> Path:
    from simulation.report import write_report

    return write_report(bench, tmp_path_factory.mktemp("report") / "report.html",
                        command="leadtime bench autoscale --trace load.csv --report report.html")


def test_the_page_holds_plotly_once_no_network_reference_and_every_part(report, bench):
    from plotly.offline import get_plotlyjs

    text = report.read_text(encoding="utf-8")
    assert text.count(get_plotlyjs()) == 1  # plotly.js inline, once for both figures
    page = text.replace(get_plotlyjs(), "")  # (the library's own strings name its website)
    assert not re.search(r"""(src|href)=["']https?://""", page)  # nothing to fetch
    assert "cdn.plot.ly" not in page
    for policy in bench.policies:  # the table
        assert f'<tr class="{policy}"><td>{policy}</td>' in text
    for producer in bench.producers:  # one chart per producer
        assert f"<h2>{producer}</h2>" in text
    for part in ("Tier 1 band (80%)", "Tier 1 point", '"name":"load"', "leadtime capacity",
                 "hpa SLO misses", "leadtime scale-out"):
        assert part in text
    # the decision markers carry the engine's reasons, as the API gives them
    assert "weights tier1=" in text and "needs" in text and "instance(s)" in text
    assert report.stat().st_size < 5 * 2**20


def test_the_recorded_replay_is_the_scored_run(bench):
    from simulation.bench import engine_spec
    from simulation.report import leadtime_decisions

    res = next(iter(bench.producers.values()))
    replayed = leadtime_decisions(res, engine_spec(bench.level, bench.threshold))
    assert replayed.mismatched_steps == 0
    assert replayed.seen == len(replayed.marks) > 0
    changed = np.flatnonzero(res.runs["leadtime"].actions)
    # every recorded decision changed the fleet of the scored run, at the step it was taken
    assert {m.step for m in replayed.marks} <= set(changed.tolist())
    assert all(m.action in ("scale_out", "scale_in") and m.reasons for m in replayed.marks)
    assert all((m.target > m.current) == (m.action == "scale_out") for m in replayed.marks)


def test_the_record_is_bounded(bench):
    from simulation.bench import engine_spec, replay_setup
    from simulation.policies import HPA, Leadtime
    from simulation.report import DecisionRecord
    from simulation.simulator import simulate

    res = next(iter(bench.producers.values()))
    demand = res.runs["leadtime"].demand
    _, _, switch, _, _ = replay_setup(pd.Series(demand, index=res.index), res.config)
    policy = Leadtime(res.config, res.tier1, res.producer, res.index[0],
                      engine_spec(bench.level, bench.threshold))
    record = DecisionRecord(policy, limit=3)
    simulate(demand, res.config, record, HPA(res.config), switch)
    assert len(record.marks) == 3 and record.seen > 3


def test_downsampling_helpers():
    from simulation.report import bin_means, coarse_spans, spans, thin

    values = np.array([1.0, 3.0, np.nan, np.nan, 5.0])
    assert bin_means(values, 2).tolist() == [2.0, pytest.approx(np.nan, nan_ok=True), 5.0]
    assert spans(np.array([0, 1, 1, 0, 1], bool)) == [(1, 3), (4, 5)]
    flags = np.zeros(1000, bool)
    flags[::3] = True  # 334 separate one-step spans
    merged, grid = coarse_spans(flags, limit=50)
    assert len(merged) <= 50 and grid > 1
    assert all(a < b <= 1000 for a, b in merged)
    assert thin(list(range(10)), 4) == [0, 3, 6, 9] and thin([1, 2], 4) == [1, 2]


def _artifacts(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("LEADTIME_TEST_ARTIFACTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def test_the_report_renders_offline_in_headless_chromium(report, bench, tmp_path):
    """Debian's chromium through playwright: no console error, no request leaves the file, the
    charts draw, a hover shows a decision's reasons, every miss of every policy is drawn as a
    visible tick (counted in the page against the data and the table); the screenshot is kept
    as an artefact."""
    if not CHROMIUM.is_file() and not shutil.which("chromium"):
        pytest.skip("chromium is not installed (apt-get install chromium): the browser test "
                    "needs Debian's headless chromium")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    executable = str(CHROMIUM) if CHROMIUM.is_file() else shutil.which("chromium")
    errors: list[str] = []
    outside: list[str] = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda exc: errors.append(str(exc)))

            def only_the_file(route):
                if route.request.url.startswith("file://"):
                    route.continue_()
                else:
                    outside.append(route.request.url)
                    route.abort()

            page.route("**/*", only_the_file)
            page.goto(report.as_uri(), wait_until="load")
            page.wait_for_selector(".js-plotly-plot .main-svg", timeout=30_000)
            plots = page.locator(".js-plotly-plot")
            assert plots.count() == 2
            for k in range(plots.count()):
                assert plots.nth(k).locator("svg.main-svg").count() >= 1
                assert plots.nth(k).locator(".scatterlayer .trace").count() > 10
            hover = page.evaluate("""() => {
                const gd = document.querySelector('.js-plotly-plot');
                const n = gd.data.findIndex(t => t.name === 'leadtime scale-out');
                if (n < 0) return null;
                Plotly.Fx.hover(gd, [{curveNumber: n, pointNumber: 0}]);
                const box = gd.querySelector('.hoverlayer .hovertext');
                return box ? box.textContent : '';
            }""")
            assert hover and "scale_out" in hover and "instances" in hover and "weights" in hover
            drawn = page.evaluate("""() => [...document.querySelectorAll('.js-plotly-plot')]
                .map(gd => Object.fromEntries(gd._fullData
                    .filter(t => t.name.endsWith(' SLO misses'))
                    .map(t => [t.name.replace(' SLO misses', ''),
                               gd.querySelectorAll('g.trace' + t.uid + ' path.point').length])))""")
            widths = page.evaluate("""() => [...document.querySelectorAll('.js-plotly-plot')]
                .flatMap(gd => gd._fullData.filter(t => t.name.endsWith(' SLO misses'))
                    .flatMap(t => [...gd.querySelectorAll('g.trace' + t.uid + ' path.point')]
                        .map(p => [parseFloat(getComputedStyle(p).strokeWidth),
                                    p.getBoundingClientRect().height])))""")
            page.screenshot(path=str(_artifacts(tmp_path) / "autoscale_report.png"),
                            full_page=True)
        finally:
            browser.close()
    assert errors == [] and outside == []
    # every miss of every policy is drawn: one tick per miss (the data's runs of missed
    # intervals; this trace has far fewer than the merge limit), each a few pixels wide
    from simulation.report import spans

    for shown, res in zip(drawn, bench.producers.values()):
        start = int(np.argmax(res.scored))
        expected = {name: len(spans(run.violated[start:] & res.scored[start:]))
                    for name, run in res.runs.items()}
        assert shown == expected
        assert sum(expected.values()) > 0  # the check is not vacuous on this trace
        for name, count in expected.items():
            assert res.metrics[name]["slo_misses"] == count  # the table's column
    assert widths and min(w for w, _ in widths) >= 2.0  # a tick's stroke, in pixels
    assert min(h for _, h in widths) >= 8.0
