"""``mlpipe bench``: the same pipelines through every runner, compared. One idea per module:

- :mod:`~mlpipe.bench.settings`: what runs (runners, overrides, quick or full)
- :mod:`~mlpipe.bench.child`: one runner in a fresh process (runs, cached rerun, floor)
- :mod:`~mlpipe.bench.runs`: the interleaved repetitions, one child per (repetition, runner)
- :mod:`~mlpipe.bench.sampling`: a child's wall time and peak memory; machine and versions
- :mod:`~mlpipe.bench.floor`: each orchestrator's native no-op pipeline of the same shape
- :mod:`~mlpipe.bench.summary`: medians, overhead, breakdown, identical outputs
- :mod:`~mlpipe.bench.report` and :mod:`~mlpipe.bench.charts`: Markdown, JSON and PNG
- :mod:`~mlpipe.bench.deployed`: the same pipelines through the orchestrators' services
- :mod:`~mlpipe.bench.scale`: sharded inference at growing row counts (``--scale``)
"""
