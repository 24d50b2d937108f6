"""mlpipe's Airflow DAGs: copy this file into your Airflow dags folder.

It defines ``mlpipe_training`` and ``mlpipe_inference`` (Airflow 3, one task per mlpipe step), or
one DAG per pipeline listed in ``MLPIPE_PIPELINES`` (e.g. ``training,inference,my_module:PIPELINE``;
modules next to this file are importable). Configure them with env vars or Airflow Variables (env
wins):

- ``MLPIPE_TRAINING_CONFIG`` / ``mlpipe_training_config``: path of a training YAML config
- ``MLPIPE_INFERENCE_CONFIG`` / ``mlpipe_inference_config``: path of an inference YAML config
- ``MLPIPE_TRAINING_OVERRIDES`` / ``MLPIPE_INFERENCE_OVERRIDES``: ``key=value`` overrides
  (``MLPIPE_<PIPELINE>_CONFIG`` / ``_OVERRIDES`` for any other pipeline)
- ``MLPIPE_HOME`` / ``mlpipe_home``: where runs and the registry live
  (default ``$AIRFLOW_HOME/mlpipe``)

Without a config a DAG uses mlpipe's built-in defaults (logged). See docs/airflow.md.
"""

from mlpipe.adapters.airflow.dags import dags_from_environment

globals().update(dags_from_environment())
