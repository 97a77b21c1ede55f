"""A recorded load trace as Prometheus data: OpenMetrics for backfill, and a live exporter.

Used to give a Prometheus server real history and a live target without a real fleet (CI, the
demo, a dry run next to production):

* :func:`openmetrics` writes a load trace as OpenMetrics text, shifted in time by ``shift_s``,
  for ``promtool tsdb create-blocks-from openmetrics`` (the backfill);
* :class:`ReplayExporter` serves ``/metrics`` on loopback: at wall time ``t`` each producer's
  gauge is the trace's value at ``t - shift_s`` (a gap in the trace is no sample), with a
  settable instance count per producer.

Both name the series ``leadtime_replayed_load{producer_id=...}`` and
``leadtime_replayed_instances{producer_id=...}``. Scrape the exporter with
``metric_relabel_configs`` dropping ``job`` and ``instance`` and the live samples continue the
backfilled series.

Run the exporter with ``python -m connectors.replay TRACE --shift-s S --port P``.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import threading
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pandas as pd

LOAD = "leadtime_replayed_load"
INSTANCES = "leadtime_replayed_instances"


def openmetrics(frame: pd.DataFrame, path: Path, shift_s: float, until_s: float | None = None,
                metric: str = LOAD) -> int:
    """Write ``timestamp, producer_id, value`` rows (NaN skipped) as OpenMetrics; rows count.

    Timestamps are the trace's naive UTC times plus ``shift_s``; rows at or after ``until_s``
    (Unix seconds) are left out (the live exporter serves them).
    """
    rows = frame.dropna(subset=["value"])
    seconds = (rows["timestamp"].astype("int64") // 10**9).to_numpy() + shift_s
    keep = seconds < until_s if until_s is not None else slice(None)
    rows, seconds = rows[keep], seconds[keep]
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as out:
        out.write(f"# HELP {metric} Replayed load of a recorded trace.\n# TYPE {metric} gauge\n")
        for pid, value, at in zip(rows["producer_id"], rows["value"], seconds):
            out.write(f'{metric}{{producer_id="{pid}"}} {float(value):g} {int(at)}\n')
        out.write("# EOF\n")
    return len(rows)


class ReplayExporter:
    """``/metrics`` replaying a trace at wall time minus ``shift_s`` (see the module docstring)."""

    def __init__(self, series: Mapping[str, pd.Series], shift_s: float, port: int = 0,
                 instances: Mapping[str, int] | None = None, host: str = "127.0.0.1") -> None:
        self.series = {p: s.dropna() for p, s in series.items()}
        self.shift_s = shift_s
        self.instances = dict(instances or {})
        exporter = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.split("?")[0] != "/metrics":
                    self.send_error(404)
                    return
                body = exporter.render().encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                try:
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    return  # the scraper went away (timed out or stopped): nothing to answer

            def log_message(self, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.port = self.server.server_address[1]
        self._thread: threading.Thread | None = None

    def value_at(self, producer_id: str, now_s: float) -> float | None:
        """The trace's value of the step holding ``now_s - shift_s`` (None in a gap)."""
        s = self.series[producer_id]
        at = pd.Timestamp(now_s - self.shift_s, unit="s")
        index = s.index.searchsorted(at, side="right") - 1
        if index < 0:
            return None
        step = s.index.freq or (s.index[1] - s.index[0] if len(s) > 1 else pd.Timedelta(0))
        if at - s.index[index] >= step:
            return None  # the step holding `at` has no sample: a gap
        value = float(s.iloc[index])
        return value if math.isfinite(value) else None

    def render(self, now_s: float | None = None) -> str:
        import time

        now = time.time() if now_s is None else now_s
        lines = [f"# TYPE {LOAD} gauge"]
        for pid in self.series:
            value = self.value_at(pid, now)
            if value is not None:
                lines.append(f'{LOAD}{{producer_id="{pid}"}} {value:g}')
        lines.append(f"# TYPE {INSTANCES} gauge")
        lines += [f'{INSTANCES}{{producer_id="{p}"}} {n}' for p, n in self.instances.items()]
        return "\n".join(lines) + "\n"

    def start(self) -> ReplayExporter:
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True,
                                        name="replay-exporter")
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def week_shift(start_s: float, now_s: float, history_s: float) -> float:
    """Whole weeks that put ``now`` at least ``history_s`` after the trace's start.

    >>> week_shift(0.0, 30 * 86400.0, 7 * 86400.0) / 86400
    21.0
    """
    week = 7 * 86400
    return math.floor((now_s - history_s - start_s) / week) * week


def main(argv: list[str] | None = None) -> None:
    """``python -m connectors.replay``: serve a trace live (and optionally write its backfill)."""
    from leadtime.data import read_load_trace

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trace", type=Path)
    parser.add_argument("--shift-s", type=float, default=None,
                        help="Seconds added to the trace's timestamps.")
    parser.add_argument("--history-days", type=float, default=None,
                        help="Instead of --shift-s: shift by whole weeks (weekdays and hours "
                             "keep their place) so that at least this many days of the trace "
                             "lie before now.")
    parser.add_argument("--shift-file", type=Path, default=None,
                        help="Write the shift used (seconds) to this file.")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--instances", type=int, default=None,
                        help="Instance count served for every producer.")
    parser.add_argument("--backfill", type=Path, default=None,
                        help="Also write the OpenMetrics backfill of everything before now.")
    args = parser.parse_args(argv)
    import time

    trace = read_load_trace(args.trace)
    now = time.time()
    if (args.shift_s is None) == (args.history_days is None):
        parser.error("give one of --shift-s and --history-days")
    shift = args.shift_s
    if shift is None:
        start = trace.frame["timestamp"].min().timestamp()
        shift = week_shift(start, now, args.history_days * 86400.0)
    if args.shift_file is not None:
        args.shift_file.write_text(f"{shift:.0f}\n")
    if args.backfill is not None:
        openmetrics(trace.frame, args.backfill, shift, until_s=now)
    series = {p: trace.series(p) for p in trace.producers}
    instances = {p: args.instances for p in series} if args.instances is not None else {}
    exporter = ReplayExporter(series, shift, args.port, instances)
    print(f"serving http://127.0.0.1:{exporter.port}/metrics", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        exporter.server.serve_forever()


if __name__ == "__main__":
    main()
