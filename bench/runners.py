"""Compare the runners (local, Airflow, Kubeflow, Dagster) on the same pipelines.

A thin wrapper over ``mlpipe bench``; see ``mlpipe bench --help``:

    python bench/runners.py --quick -n 1     # tiny model, a couple of minutes
    python bench/runners.py -n 3             # the demo's model, the README's table
"""

from mlpipe.cli import app

if __name__ == "__main__":
    app(["bench", *__import__("sys").argv[1:]])
