"""The API as a separate process, the way ``leadtime serve`` runs it: for tests that kill it,
restart it, or read its memory from ``/proc``."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import yaml

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "hostile-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
CONFIG = {
    "engine": {"mode": "dry_run", "decision_interval_s": 3600},
    "pools": {"web": {"defaults": {"capacity_per_instance": 10, "max_instances": 50},
                      "producers": [{"id": "api-1"}, {"id": "api-2"}]}},
}


class ApiProcess:
    """``uvicorn --factory serving.app:create_app`` on a free loopback port, its state under
    ``home``; :meth:`start` waits for ``/healthz``, :meth:`kill` sends SIGKILL."""

    def __init__(self, home: Path, config: dict | None = None) -> None:
        self.home = home
        home.mkdir(parents=True, exist_ok=True)
        self.config_path = home / "leadtime.yaml"
        self.config_path.write_text(yaml.safe_dump(config or CONFIG))
        self.process: subprocess.Popen | None = None
        self.url = ""

    def env(self) -> dict[str, str]:
        return {**os.environ, "LEADTIME_HOME": str(self.home / "state"),
                "LEADTIME_CONFIG_PATH": str(self.config_path), "LEADTIME_API_TOKEN": TOKEN,
                "MLFLOW_TRACKING_URI": f"sqlite:///{self.home / 'mlflow.db'}",
                "LEADTIME_PROMETHEUS_URL": "", "LEADTIME_HAPROXY_SOCKET": ""}

    def start(self, timeout: float = 120.0) -> ApiProcess:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--factory", "serving.app:create_app",
             "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
            cwd=ROOT, env=self.env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout
        while True:
            assert self.process.poll() is None, self.process.stderr.read().decode()[-3000:]
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the API did not become ready"
            time.sleep(0.1)

    def rss_mb(self) -> float:
        """The server's resident memory (VmRSS), in MB."""
        assert self.process is not None
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise AssertionError("no VmRSS")

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        if self.alive():
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.alive():
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()
