"""kfp.local's process-global session, for the runner and the floor alike."""

from __future__ import annotations

import contextlib
import logging
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

from kfp import local
from kfp.local import config as local_config


@contextlib.contextmanager
def local_session(pipeline_root: Path, events: logging.Filter | None = None) -> Iterator[None]:
    """kfp.local's SubprocessRunner under ``pipeline_root`` for the ``with`` block, task logs on
    stderr (stdout stays the caller's: ``mlpipe --json``) and through ``events``; kfp.local's
    process-global configuration restored after."""
    previous = local_config.LocalExecutionConfig.instance
    events = events or logging.Filter()  # lets every record through
    logging.getLogger().addFilter(events)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(sys.stderr):
            # the image is for clusters; locally the body runs with this interpreter
            warnings.filterwarnings("ignore", message=".*non-Python base image.*")
            warnings.filterwarnings("ignore", message=".*no effect in the current local runner")
            local.init(runner=local.SubprocessRunner(use_venv=False),
                       pipeline_root=str(pipeline_root), raise_on_error=True)
            yield
    finally:
        logging.getLogger().removeFilter(events)
        local_config.LocalExecutionConfig.instance = previous

