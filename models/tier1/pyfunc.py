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
        return self.bundle.serve(model_input, params)


mlflow.models.set_model(BaselinePyfunc())
