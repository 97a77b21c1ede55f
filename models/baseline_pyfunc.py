"""MLflow "models from code" definition of the Tier 1 baseline pyfunc.

MLflow executes this file when the model is logged and loaded; it is not imported by the
product. Rows of (producer_id, timestamp) in, point/lower/upper out, without refitting.
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
        return self.bundle.predict(model_input["producer_id"], model_input["timestamp"],
                                   level=int(params.get("level", 80)),
                                   max_ahead_hours=float(params.get("max_ahead_hours", 48.0)))


mlflow.models.set_model(BaselinePyfunc())
