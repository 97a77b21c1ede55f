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
