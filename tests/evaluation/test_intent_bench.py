"""``leadtime bench intent``'s table says which of the contract's optional columns a trace
lacks, and what the intent model does without each."""

from evaluation.intent_bench import format_table
from models.tier2.train import missing_columns


def test_the_table_names_the_optional_columns_a_trace_lacks():
    scores = {"mae": 2.0, "median_ae": 1.0, "coverage_80": 0.8, "interval_width": 3.0,
              "bucket_accuracy": 0.5}
    document = {
        "trace": "jobs.csv", "target": "duration", "unit": "seconds", "n_train": 80,
        "n_test": 20, "test_from": "2024-05-16 00:00:00",
        "missing_columns": missing_columns(["submit_time", "user", "queue", "duration"]),
        "models": {"per_type_median": dict(scores, mae=4.0), "intent": scores},
    }
    text = format_table(document)
    assert "no consumer_id column: every request counts as a new consumer's" in text
    assert "no request_type column" in text and "no producer_id column" in text
    assert "intent MAE / per-type median MAE = 0.500" in text
    complete = dict(document, missing_columns=missing_columns(
        ["timestamp", "consumer_id", "request_type", "producer_id", "demand"]))
    assert "column:" not in format_table(complete)


def test_the_table_shows_each_declared_resource_beside_its_baselines():
    scores = {"mae": 2.0, "median_ae": 1.0, "coverage_80": 0.8, "interval_width": 3.0,
              "bucket_accuracy": 0.5}
    cell = {"n": 10, "coverage_80": 0.8, "interval_width": 1.0}
    document = {
        "trace": "jobs.csv", "target": "runtime", "unit": "seconds", "n_train": 80,
        "n_test": 20, "test_from": "2024-05-16 00:00:00", "missing_columns": {},
        "models": {"per_type_median": dict(scores, mae=4.0), "intent": scores},
        "resources": {"memory": {
            "unit": "GiB", "global_median": dict(scores, mae=0.8),
            "per_type_median": dict(scores, mae=0.4),
            "intent": dict(scores, mae=0.2, selection={"selected": "history"},
                           coverage_by_group={"overall": cell, "seen_consumers": cell,
                                              "new_consumers": cell, "request_type": {"a": cell},
                                              "consumer_request_type": {}})}},
    }
    text = format_table(document)
    assert ("resource memory (GiB): intent (history) MAE 0.200, coverage_80 0.800, width "
            "3.000; MAE of global_median 0.800, per_type_median 0.400") in text


def test_bench_intent_and_resources_refuse_a_scenario_they_do_not_know():
    from typer.testing import CliRunner

    from leadtime_cli.app import app

    for args, says in ((["bench", "intent"], "give one of --requests or --scenario"),
                       (["bench", "intent", "--scenario", "nope"], "unknown --scenario 'nope'"),
                       (["bench", "resources", "--scenario", "nope"],
                        "unknown --scenario 'nope'")):
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 2 and says in result.output, result.output
        assert "Traceback" not in result.output


def test_bench_resources_refuses_requests_that_declare_no_resources(tmp_path):
    from typer.testing import CliRunner

    from features.synthetic import write_request_trace
    from leadtime_cli.app import app

    path = write_request_trace(tmp_path, n=50)
    result = CliRunner().invoke(app, ["bench", "resources", "--trace", str(path)])
    assert result.exit_code == 2, result.output
    assert "its schema declares no resources" in result.output
    assert "Traceback" not in result.output
