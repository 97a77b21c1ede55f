"""A real Prometheus (Debian's ``prometheus`` and ``promtool``) with backfilled real history and
a live scrape of :class:`connectors.replay.ReplayExporter`, on loopback free ports."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pandas as pd
import pytest

STEP = pd.Timedelta(minutes=1)
SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class PromServer:
    """One Prometheus process; ``kill()`` and ``start()`` again on the same data and port."""

    home: Path
    port: int
    targets: list[str]
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, wait_s: float = 60) -> PromServer:
        config = self.home / "prometheus.yml"
        config.write_text(
            "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
            "scrape_configs:\n  - job_name: replay\n"
            f"    static_configs: [{{targets: {self.targets!r}}}]\n"
            "    metric_relabel_configs: [{action: labeldrop, regex: 'job|instance'}]\n")
        log = (self.home / "prometheus.log").open("ab")
        self.process = subprocess.Popen(
            ["prometheus", f"--config.file={config}", f"--storage.tsdb.path={self.home / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--storage.tsdb.retention.time=100y",
             "--query.lookback-delta=59s"], stdout=log, stderr=log)
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/-/ready", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            if self.process.poll() is not None:
                raise RuntimeError((self.home / "prometheus.log").read_text()[-2000:])
            time.sleep(0.3)
        raise RuntimeError("prometheus did not become ready")

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(10)
            self.process = None


def backfill(openmetrics_file: Path, data_dir: Path) -> None:
    """``promtool tsdb create-blocks-from openmetrics`` into ``data_dir``."""
    subprocess.run(["promtool", "tsdb", "create-blocks-from", "openmetrics",
                    str(openmetrics_file), str(data_dir)], check=True, capture_output=True,
                   timeout=300)


@pytest.fixture(scope="session")
def nasa_slice(tmp_path_factory) -> pd.DataFrame:
    """Three days of the real NASA trace (1 min steps) with a 7-minute gap cut out of day 2."""
    path = SHARED_DATA / "load" / "nasa_http_1995.csv"
    if not path.is_file():
        pytest.skip(f"shared trace not found at {path}")
    frame = pd.read_csv(path, parse_dates=["timestamp"], nrows=3 * 1440)
    gap = (frame["timestamp"] >= "1995-07-02 12:00") & (frame["timestamp"] < "1995-07-02 12:07")
    return frame.loc[~gap, ["timestamp", "producer_id", "value"]].reset_index(drop=True)


@pytest.fixture(scope="session")
def prometheus(tmp_path_factory, nasa_slice):
    """Prometheus with the slice backfilled to end one minute ago, then replayed live."""
    from connectors.replay import ReplayExporter, openmetrics

    if shutil.which("prometheus") is None or shutil.which("promtool") is None:
        pytest.skip("prometheus/promtool not installed (apt-get install prometheus)")
    home = tmp_path_factory.mktemp("prometheus")
    now = time.time() // 60 * 60
    last = nasa_slice["timestamp"].iloc[-1].timestamp()
    shift = now - 60 - last  # the slice's last minute is one minute ago
    openmetrics(nasa_slice, home / "backfill.om", shift)
    backfill(home / "backfill.om", home / "data")
    series = {"nasa-www": nasa_slice.set_index("timestamp")["value"].asfreq("1min")}
    # live: the slice again, from its start, a day later than the backfill's first day
    exporter = ReplayExporter(series, shift + 86400, instances={"nasa-www": 7}).start()
    server = PromServer(home, free_port(), [f"127.0.0.1:{exporter.port}"]).start()
    server.shift_s = shift
    server.exporter = exporter
    yield server
    server.kill()
    exporter.stop()
