"""kfp.local's process-global session, for the runner and the floor alike."""

from __future__ import annotations

import contextlib
import os
import sys
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path

from kfp import local
from kfp.local import config as local_config


@contextlib.contextmanager
def local_session(pipeline_root: Path, env: Mapping[str, str] | None = None) -> Iterator[None]:
    """kfp.local with SubprocessRunner under ``pipeline_root`` for the ``with`` block, its task
    logs on stderr (stdout stays the caller's: ``mlpipe --json``), ``env``'s ``PYTHONPATH`` for
    its processes; kfp.local's process-global configuration and the environment restored after.
    """
    previous, pythonpath = local_config.LocalExecutionConfig.instance, os.environ.get("PYTHONPATH")
    if env is not None:
        os.environ["PYTHONPATH"] = env.get("PYTHONPATH", "")
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(sys.stderr):
            # the image is for clusters; locally the body runs with this interpreter
            warnings.filterwarnings("ignore", message=".*non-Python base image.*")
            warnings.filterwarnings("ignore", message=".*no effect in the current local runner")
            local.init(runner=local.SubprocessRunner(use_venv=False),
                       pipeline_root=str(pipeline_root), raise_on_error=True)
            yield
    finally:
        local_config.LocalExecutionConfig.instance = previous
        os.environ.pop("PYTHONPATH", None)
        if pythonpath is not None:
            os.environ["PYTHONPATH"] = pythonpath

