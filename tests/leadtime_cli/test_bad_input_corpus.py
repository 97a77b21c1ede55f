"""Bad input never half-lands: a corpus of malformed load traces, one case per class, generated
here from one clean trace.

Each refused class goes through the commands that read a trace (``bench forecast``, the Tier 1
reader, and ``bench autoscale``, the replay's) and must end with exit code 2, one ``error:``
line naming the problem, no traceback; ``leadtime demo`` (the path that registers models) is run
on every class in the slow test and must leave the MLflow registry empty. Each accepted class
must read to the same frame as the clean file.
"""

from __future__ import annotations

import gzip
from collections.abc import Callable
from pathlib import Path

import pytest

Builder = Callable[[Path, str], Path]


def clean_text(days: int = 14) -> str:
    """A clean load trace (two producers, hourly), as the contract writes it."""
    from simulation.generate import synthetic_load

    frame = synthetic_load(producers=2, days=days, interval="1h")
    frame = frame.assign(timestamp=frame["timestamp"].dt.strftime("%Y-%m-%d %H:%M:%S"))
    return frame.to_csv(index=False, lineterminator="\n")


def _write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


def _replace_value(text: str, line: int, value: str) -> str:
    rows = text.splitlines()
    cells = rows[line].split(",")
    rows[line] = ",".join([*cells[:2], value])
    return "\n".join(rows) + "\n"


# --- accepted classes ----------------------------------------------------------------------

def bom_crlf(tmp: Path, text: str) -> Path:
    return _write(tmp / "bom_crlf.csv", "\ufeff" + text.replace("\n", "\r\n"))


def zone_offsets(tmp: Path, text: str) -> Path:
    """ISO 8601 with zone offsets (a DST-aware exporter): read as the local clock time written."""
    rows = text.splitlines()
    out = [rows[0]]
    for i, row in enumerate(rows[1:]):
        stamp, rest = row.split(",", 1)
        zone = ("+02:00", "+0200", "Z", "-05:00")[i % 4]
        out.append(f"{stamp.replace(' ', 'T')}{zone},{rest}")
    return _write(tmp / "zones.csv", "\n".join(out) + "\n")


ACCEPTED = {"BOM and CRLF": bom_crlf, "zone offsets": zone_offsets}


# --- refused classes -----------------------------------------------------------------------

def nan_value(tmp: Path, text: str) -> Path:
    return _write(tmp / "nan.csv", _replace_value(text, 7, "NaN"))


def inf_value(tmp: Path, text: str) -> Path:
    return _write(tmp / "inf.csv", _replace_value(text, 9, "inf"))


def semicolons(tmp: Path, text: str) -> Path:
    return _write(tmp / "semicolons.csv", text.replace(",", ";"))


def latin1(tmp: Path, text: str) -> Path:
    return _write(tmp / "latin1.csv", text.replace("svc-1", "svc-é"), encoding="latin-1")


def gzip_named_csv(tmp: Path, text: str) -> Path:
    path = tmp / "compressed.csv"
    path.write_bytes(gzip.compress(text.encode()))
    return path


def ragged_long(tmp: Path, text: str) -> Path:
    rows = text.splitlines()
    rows[5] += ",7"
    return _write(tmp / "ragged_long.csv", "\n".join(rows) + "\n")


def ragged_short(tmp: Path, text: str) -> Path:
    rows = text.splitlines()
    rows[5] = rows[5].rsplit(",", 1)[0]
    return _write(tmp / "ragged_short.csv", "\n".join(rows) + "\n")


def duplicate_columns(tmp: Path, text: str) -> Path:
    rows = text.splitlines()
    out = [rows[0] + ",value"] + [row + ",1" for row in rows[1:]]
    return _write(tmp / "duplicate_columns.csv", "\n".join(out) + "\n")


def header_only(tmp: Path, text: str) -> Path:
    return _write(tmp / "header_only.csv", text.splitlines()[0] + "\n")


def two_rows(tmp: Path, text: str) -> Path:
    return _write(tmp / "two_rows.csv", "\n".join(text.splitlines()[:3]) + "\n")


def three_days(tmp: Path, text: str) -> Path:
    return _write(tmp / "three_days.csv", clean_text(days=3))


def absurd_magnitude(tmp: Path, text: str) -> Path:
    return _write(tmp / "huge.csv", _replace_value(text, 11, "1e308"))


def directory(tmp: Path, text: str) -> Path:
    path = tmp / "a_directory.csv"
    path.mkdir()
    return path


def missing_file(tmp: Path, text: str) -> Path:
    return tmp / "missing.csv"


#: class -> (builder, what the one error line must say)
REFUSED: dict[str, tuple[Builder, str]] = {
    "NaN": (nan_value, "is not a number"),
    "inf": (inf_value, "is not a number"),
    "; as delimiter": (semicolons, "';'"),
    "Latin-1": (latin1, "not UTF-8"),
    "gzip named .csv": (gzip_named_csv, "gzip"),
    "ragged rows (long)": (ragged_long, "line 6"),
    "ragged rows (short)": (ragged_short, "line 6"),
    "duplicate column names": (duplicate_columns, "'value' more than once"),
    "header only": (header_only, "header but no rows"),
    "2 rows": (two_rows, "needs at least"),
    "3 days": (three_days, "needs at least"),
    "1e308": (absurd_magnitude, "1e+15"),
    "a directory": (directory, "is a directory"),
    "a missing file": (missing_file, "no such file"),
}


#: Long enough for the replay (one warm-up day, then scored days), too short for the Tier 1
#: backtest: ``bench autoscale`` accepts it, the commands that fit Tier 1 refuse it.
REPLAY_ACCEPTS = {"3 days"}


@pytest.fixture(scope="module")
def text() -> str:
    return clean_text()


@pytest.mark.parametrize("name", list(ACCEPTED))
def test_accepted_classes_read_as_the_clean_file(tmp_path, text, name):
    from pandas.testing import assert_frame_equal

    from leadtime.data import read_load_trace

    clean = read_load_trace(_write(tmp_path / "clean.csv", text))
    odd = read_load_trace(ACCEPTED[name](tmp_path, text))
    assert_frame_equal(odd.frame, clean.frame)
    assert odd.intervals == clean.intervals


def _one_error_line(result, says: str) -> str:
    output = result.output  # stdout and stderr, interleaved (Click 8.2+)
    assert result.exit_code == 2, output
    assert "Traceback" not in output
    errors = [line for line in output.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, output
    assert says in errors[0], errors[0]
    return errors[0]


@pytest.mark.parametrize("name", list(REFUSED))
def test_refused_classes_get_one_clear_line_from_every_reader(state, tmp_path, text, name):
    from typer.testing import CliRunner

    from leadtime_cli.app import app

    build, says = REFUSED[name]
    trace = build(tmp_path, text)
    runner = CliRunner()
    _one_error_line(runner.invoke(app, ["bench", "forecast", "--trace", str(trace),
                                        "--workers", "1"]), says)
    replay = runner.invoke(app, ["bench", "autoscale", "--trace", str(trace)])
    if name in REPLAY_ACCEPTS:
        assert replay.exit_code == 0, replay.output
    else:
        _one_error_line(replay, says)


@pytest.mark.slow
def test_demo_refuses_every_class_and_registers_nothing(state, tmp_path, text):
    from mlflow import MlflowClient
    from typer.testing import CliRunner

    from leadtime_cli.app import app

    runner = CliRunner()
    for name, (build, says) in REFUSED.items():
        folder = tmp_path / name.replace(" ", "_").replace(";", "semicolon")
        folder.mkdir()
        _one_error_line(runner.invoke(app, ["demo", "--trace", str(build(folder, text))]), says)
    assert MlflowClient(tracking_uri=state.tracking_uri).search_model_versions() == []
