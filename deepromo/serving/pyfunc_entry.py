"""MLflow "models from code" entry: logged as the pyfunc's code so no pickled Python object is stored.

MLflow copies this file into the model and runs it on load; it only names the wrapper class.
"""

import mlflow

from deepromo.serving.mlflow_model import DeepromoPyfunc

mlflow.models.set_model(DeepromoPyfunc())
