"""Which pipelines a deployed orchestrator serves, with which configs: one convention for every
code location or dags folder.

``MLPIPE_PIPELINES`` lists registered names or ``module:ATTR`` refs (comma-separated); a
pipeline's config file is ``MLPIPE_<NAME>_CONFIG``, with ``--set``-style overrides from
``MLPIPE_<NAME>_OVERRIDES``; without a file, its config type's defaults. An orchestrator may
read these settings from its own store as well (``setting``).
"""

from __future__ import annotations

import logging
import os
import re
import shlex
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from mlpipe.core.config import PipelineSettings, load_config
from mlpipe.core.pipeline import Pipeline, resolve_pipeline

log = logging.getLogger(__name__)

PIPELINES_ENV = "MLPIPE_PIPELINES"
#: The built-in pipelines: what an orchestrator's shipped entry point serves unasked.
BUILT_IN = ("training", "inference")
#: Where a setting is read: an env var name -> its value (None or "" when unset).
Setting = Callable[[str], "str | None"]


@dataclass(frozen=True)
class Served:
    """A served pipeline, its validated config and a line saying where the config came from."""

    pipeline: Pipeline
    config: PipelineSettings
    note: str


def env_key(pipeline: str) -> str:
    """A pipeline name as it appears in env var names (``my-pipe`` -> ``MY_PIPE``)."""
    return re.sub(r"[^A-Za-z0-9_]", "_", pipeline).upper()


def config_env(pipeline: str) -> str:
    """The env var naming a served pipeline's config file."""
    return f"MLPIPE_{env_key(pipeline)}_CONFIG"


def listed(raw: str | None) -> list[str]:
    """The refs of a comma-separated list (blanks dropped)."""
    return [r.strip() for r in (raw or "").split(",") if r.strip()]


def served_pipelines(refs: Iterable[str], setting: Setting = os.environ.get) -> list[Served]:
    """Each ref's pipeline with its config; a named config that is missing or invalid raises,
    so the orchestrator shows an import error instead of silently running something else."""
    served: list[Served] = []
    for ref in dict.fromkeys(refs):
        pipeline = resolve_pipeline(ref)
        env = config_env(pipeline.name)
        path = setting(env) or None
        overrides = shlex.split(setting(f"MLPIPE_{env_key(pipeline.name)}_OVERRIDES") or "")
        if path:
            note = f"Config: `{path}` {' '.join(overrides)}"
        else:
            log.info("mlpipe: %s not set; %s uses mlpipe's built-in default config",
                     env, pipeline.name)
            note = f"Config: mlpipe's built-in defaults (set {env})."
        config = load_config(path, overrides, pipeline=pipeline.name,
                             config_type=pipeline.config_type)
        served.append(Served(pipeline, config, note))
    return served
