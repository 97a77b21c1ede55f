"""MLflow "models from code" definition of the Tier 1 baseline pyfunc.

MLflow executes this file when the model is logged and loaded; it is not imported by the
product. Rows of (producer_id, timestamp) in, point/lower/upper out, without refitting; with
``params={"window_s": L}`` each row's answer is the peak over ``[timestamp, timestamp + L]``
(the question the decision loop asks, ``BaselineBundle.window_peak``).
"""

import mlflow
import pandas as pd
from mlflow.pyfunc import PythonModel


class BaselinePyfunc(PythonModel):
    """Serves a fitted ``BaselineBundle`` (one champion forecaster per producer)."""

    def load_context(self, context):
        import joblib

        self.bundle = joblib.load(context.artifacts["bundle"])

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None):
        params = params or {}
        level = int(params.get("level", 80))
        ahead = float(params.get("max_ahead_hours", 48.0))
        window_s = float(params.get("window_s", 0.0))
        if window_s > 0:  # the decision loop's question: the peak over [timestamp, + window_s]
            return self.bundle.predict_window(model_input["producer_id"], model_input["timestamp"],
                                              window_s, level=level, max_ahead_hours=ahead)
        return self.bundle.predict(model_input["producer_id"], model_input["timestamp"],
                                   level=level, max_ahead_hours=ahead)


mlflow.models.set_model(BaselinePyfunc())
