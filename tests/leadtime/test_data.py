"""The input contracts: bad files are refused whole with a message naming file, column and rows."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from leadtime.data import TraceError, read_anomaly_set, read_load_trace, read_request_trace

GOOD = "timestamp,producer_id,value\n" + "".join(
    f"2024-01-01 00:{m:02d}:00,api,{10 + m}\n" for m in range(10)
)


def write(tmp_path, text: str, name: str = "trace.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def refused(path, *needles: str) -> str:
    with pytest.raises(TraceError) as caught:
        read_load_trace(path)
    message = str(caught.value)
    assert path.name in message
    for needle in needles:
        assert needle in message, message
    return message


def test_good_trace_loads_with_its_interval(tmp_path):
    trace = read_load_trace(write(tmp_path, GOOD))
    assert trace.producers == ["api"]
    assert trace.intervals["api"] == pd.Timedelta("1min")
    assert trace.series("api").tolist() == [float(10 + m) for m in range(10)]


def test_missing_column_is_refused(tmp_path):
    refused(write(tmp_path, "timestamp,producer_id\n2024-01-01,a\n"), "missing column", "'value'")


def test_text_where_numbers_belong_names_the_line(tmp_path):
    text = GOOD.replace("00:03:00,api,13", "00:03:00,api,lots")
    refused(write(tmp_path, text), "column 'value'", "line 5 ('lots')", "not a number")


def test_unparseable_timestamp_is_refused(tmp_path):
    text = GOOD.replace("2024-01-01 00:04:00", "yesterday")
    refused(write(tmp_path, text), "column 'timestamp'", "line 6", "ISO 8601")


def test_negative_load_is_refused(tmp_path):
    text = GOOD.replace("00:02:00,api,12", "00:02:00,api,-12")
    refused(write(tmp_path, text), "column 'value'", "line 4", "negative")


@pytest.mark.parametrize("text", ["", "timestamp,producer_id,value\n"])
def test_empty_file_is_refused(tmp_path, text):
    refused(write(tmp_path, text), "empty" if not text else "no rows")


def test_duplicate_timestamps_are_refused(tmp_path):
    lines = GOOD.splitlines()
    text = "\n".join([*lines[:4], lines[3], lines[3], *lines[4:]]) + "\n"
    refused(write(tmp_path, text), "column 'timestamp'", "duplicate timestamps", "line(s) 5")


def test_unordered_timestamps_are_refused(tmp_path):
    lines = GOOD.splitlines()
    text = "\n".join([lines[0], *reversed(lines[1:])]) + "\n"
    refused(write(tmp_path, text), "out of order")


def test_mixed_intervals_are_refused(tmp_path):
    rows = [f"2024-01-01 00:{m:02d}:00,api,1" for m in range(0, 30, 5)]
    rows += [f"2024-01-01 00:{m:02d}:00,api,1" for m in range(32, 59, 3)]
    refused(write(tmp_path, "timestamp,producer_id,value\n" + "\n".join(rows) + "\n"),
            "mixed intervals")


def test_refusal_loses_nothing_and_half_ingests_nothing(tmp_path):
    path = write(tmp_path, GOOD.replace("00:09:00,api,19", "00:09:00,api,x"))
    before = path.read_bytes()
    with pytest.raises(TraceError):
        read_load_trace(path)
    assert path.read_bytes() == before


def test_gaps_are_allowed_and_become_nan(tmp_path):
    lines = GOOD.splitlines()
    text = "\n".join(lines[:4] + lines[7:]) + "\n"  # three minutes missing
    series = read_load_trace(write(tmp_path, text)).series("api")
    assert len(series) == 10 and series.isna().sum() == 3


def test_a_few_clock_glitches_in_a_long_series_are_repaired_and_reported(tmp_path):
    index = pd.date_range("2024-01-01", periods=1000, freq="5min")
    frame = pd.DataFrame({"timestamp": index, "producer_id": "db", "value": np.arange(1000.0)})
    glitch = frame.iloc[[500]].assign(value=1.0)  # one duplicated sample, as at a DST change
    path = tmp_path / "glitch.csv"
    pd.concat([frame.iloc[:501], glitch, frame.iloc[501:]]).to_csv(path, index=False)
    trace = read_load_trace(path)
    assert len(trace.repairs) == 1 and "duplicate" in trace.repairs[0]
    assert len(trace.series("db")) == 1000
    with pytest.raises(TraceError, match="duplicate"):
        read_load_trace(path, max_irregular_share=0)


def test_outage_rows_become_gaps(tmp_path):
    text = "timestamp,producer_id,value,outage\n" + "".join(
        f"2024-01-01 00:{m:02d}:00,api,{m},{int(m in (3, 4))}\n" for m in range(8)
    )
    trace = read_load_trace(write(tmp_path, text))
    assert trace.excluded_outage_rows == 2
    assert trace.series("api").isna().sum() == 2


def test_request_trace_needs_its_schema_and_numbers(tmp_path):
    csv = write(tmp_path, "timestamp,request_type,size,demand\n2024-01-01 00:00:01,a,3,1.5\n"
                          "2024-01-01 00:00:02,b,,2.0\n", "req.csv")
    with pytest.raises(TraceError, match="schema"):
        read_request_trace(csv)
    (tmp_path / "req.schema.yaml").write_text(
        "target: demand\ncategorical: [request_type]\nnumeric: [size]\ntime: timestamp\n")
    trace = read_request_trace(csv)
    assert trace.frame["size"].isna().sum() == 1  # a blank feature is unknown, not an error
    csv.write_text(csv.read_text().replace("2.0", "slow"))
    with pytest.raises(TraceError, match="column 'demand'"):
        read_request_trace(csv)


def test_request_trace_declares_resources_that_are_never_features(tmp_path):
    """``resources:`` names each resource's column (or column and unit); a resource column that
    is also a feature, a bad name or a negative demand refuses the file in one line."""
    csv = write(tmp_path, "timestamp,request_type,size,cores,gib,runtime\n"
                          "2024-01-01 00:00:01,a,3,2.5,0.5,12\n"
                          "2024-01-01 00:00:02,b,4,1,16,600\n", "req.csv")
    schema = tmp_path / "req.schema.yaml"
    head = ("target: runtime\ntarget_unit: seconds\ncategorical: [request_type]\n"
            "numeric: [size]\n")
    schema.write_text(head + "resources:\n  cpu: cores\n  memory: {column: gib, unit: GiB}\n")
    trace = read_request_trace(csv)
    assert trace.schema.resources == {"cpu": "cores", "memory": "gib"}
    assert trace.schema.resource_units == {"cpu": "", "memory": "GiB"}
    assert trace.frame["gib"].tolist() == [0.5, 16.0]
    for bad, needle in (("resources:\n  CPU: cores\n", "not a resource name"),
                        ("resources: [cores]\n", "must map each resource"),
                        ("resources:\n  cpu: size\n", "also features"),
                        ("resources:\n  cpu: {unit: cores}\n", "give its column"),
                        ("resources:\n  cpu: absent\n", "absent")):
        schema.write_text(head + bad)
        with pytest.raises(TraceError, match=needle) as caught:
            read_request_trace(csv)
        assert "Traceback" not in str(caught.value) and "\n" not in str(caught.value).strip()
    schema.write_text(head + "resources:\n  cpu: cores\n")
    csv.write_text(csv.read_text().replace(",2.5,", ",-2.5,"))
    with pytest.raises(TraceError, match="resource's demand cannot be"):
        read_request_trace(csv)


def test_anomaly_set_reads_series_and_windows(tmp_path):
    (tmp_path / "web").mkdir()
    (tmp_path / "web" / "cpu.csv").write_text("timestamp,value\n2024-01-01 00:00:00,1\n"
                                              "2024-01-01 00:05:00,2\n")
    (tmp_path / "windows.json").write_text(json.dumps(
        {"web/cpu.csv": [["2024-01-01 00:00:00", "2024-01-01 00:05:00"]]}))
    anomalies = read_anomaly_set(tmp_path)
    assert list(anomalies.series) == ["web/cpu.csv"] and len(anomalies.windows["web/cpu.csv"]) == 1
    (tmp_path / "windows.json").write_text(json.dumps({"web/gone.csv": []}))
    with pytest.raises(TraceError, match="does not exist"):
        read_anomaly_set(tmp_path)


def test_shared_traces_load(shared_data):
    nasa = read_load_trace(shared_data / "load" / "nasa_http_1995.csv")
    assert nasa.producers == ["nasa-www"] and nasa.excluded_outage_rows > 0
    nab = read_load_trace(shared_data / "load" / "nab_aws_cloudwatch.csv")
    assert len(nab.producers) == 17
    assert read_request_trace(shared_data / "requests" / "azure_llm_code.csv").schema.target == "demand"
