"""``schemathesis run --checks all`` against the real API, with and without an intent champion.

The app runs in a real uvicorn server on loopback (its lifespan loads what the registry holds)
and the schemathesis CLI runs every check (server errors, status codes and headers the document
does not list, response schemas, negative data accepted, positive data refused, unsupported
methods and their ``Allow``, ignored auth, ...) through its phases, bounded in examples. The one
configured departure (``schemathesis.toml`` beside this file): a 503 is the documented degraded
answer, not a server error.

Without a champion the predict route validates against the generic request contract and then
answers 503; with one, its OpenAPI entry carries the champion's request schema and valid bodies
get predictions.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

TOKEN = "schemathesis-token"
CONFIG = Path(__file__).with_name("schemathesis.toml")
EXAMPLES = 10  # per operation and phase; the whole run takes well under a minute


@contextmanager
def serve(settings) -> Iterator[str]:
    """The API for ``settings`` in a uvicorn server on a free loopback port; yields its URL."""
    import uvicorn

    from serving.app import create_app

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, name="api", daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the API did not start"
        time.sleep(0.1)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def schemathesis(url: str, tmp: Path, token: str = TOKEN) -> subprocess.CompletedProcess:
    """``schemathesis run --checks all`` against ``url``; the output names any failure."""
    cli = Path(sys.executable).with_name("schemathesis")
    return subprocess.run(
        [str(cli), "--config-file", str(CONFIG), "run", f"{url}/openapi.json", "--checks", "all",
         "--max-examples", str(EXAMPLES), "--workers", "1", "--seed", "1",
         "--generation-database", "none", "--no-color", "--report-dir", str(tmp / "report"),
         "-H", f"Authorization: Bearer {token}"],
        capture_output=True, text=True, timeout=600, cwd=tmp,
        env={**os.environ, "SCHEMATHESIS_TELEMETRY": "false"})


def passes(result: subprocess.CompletedProcess) -> str:
    """The run's output, asserting it found nothing (the message is its FAILURES section)."""
    out = result.stdout + result.stderr
    failures = out[out.find("= FAILURES ="):out.find("= SUMMARY =")] if "FAILURES" in out else out
    assert result.returncode == 0, failures[-8000:]
    assert "generated" in out, out[-3000:]
    return out


def test_all_checks_pass_without_champions(state, tmp_path):
    from pydantic import SecretStr

    settings = state.model_copy(update={"api_token": SecretStr(TOKEN)})
    with serve(settings) as url:
        import httpx

        document = httpx.get(f"{url}/openapi.json").json()
        body = document["paths"]["/v1/requests/predict"]["post"]["requestBody"]
        assert body["content"]["application/json"]["schema"]["$ref"].endswith("IntentPredictBody")
        assert "GenericRequest" in document["components"]["schemas"]
        # a malformed body is a 422 before the missing champion is a 503
        assert httpx.post(f"{url}/v1/requests/predict", json={"steps": [1]}).status_code == 422
        assert httpx.post(f"{url}/v1/requests/predict", json={"steps": 1}).status_code == 503
        passes(schemathesis(url, tmp_path))


def test_all_checks_pass_with_the_intent_champion(tmp_path, monkeypatch):
    from test_predict import TOKEN as token
    from test_predict import intent_champion

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    (tmp_path / "store").mkdir()
    settings = intent_champion(tmp_path / "store", interval_s=60.0)
    with serve(settings) as url:
        import httpx

        schemas = httpx.get(f"{url}/openapi.json").json()["components"]["schemas"]
        request = schemas["IntentRequest"]
        assert request["additionalProperties"] is False and not request.get("required")
        assert {"consumer_id", "steps", "images"} <= set(request["properties"])
        passes(schemathesis(url, tmp_path, token))
