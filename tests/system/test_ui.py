"""The Airflow and Dagster web UIs, seen through headless Chromium, show mlpipe's pipelines.

Uses ``scripts/screenshots.py`` (the script that makes the docs' screenshots): the same services
on 127.0.0.1 and free ports, the same browser, the rendered DOM read over the DevTools protocol.
No pipeline runs here: a UI that lists the DAGs/assets of the shipped dags file / definitions
module with no import or load error is what a user sees first.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import ROOT, load_script

shots = load_script(ROOT / "scripts" / "screenshots.py", "mlpipe_screenshots")
CHROMIUM = shots.find_chromium()

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed "
                       "(apt-get install -y chromium; .ci/run installs it)"),
]


@pytest.fixture
def browser() -> Iterator[Any]:
    """One headless Chromium for the test (the same class the screenshot script uses)."""
    with shots.Browser(CHROMIUM) as b:
        yield b


def test_airflow_ui_lists_mlpipe_dags_without_import_errors(tmp_path: Path, browser: Any) -> None:
    home = tmp_path / "home"
    home.mkdir()
    with shots.airflow_ui(home) as url:  # returns once the dag processor parsed mlpipe_dags.py
        assert shots.airflow_import_errors(browser, url) == []
        dags = shots.airflow_dags_page(browser, url)
        assert "2 Dags" in dags, dags
        dom = browser.dom()  # an import error is a badge labelled "Dag Import Error"
        assert "import error" not in dom.lower(), dom
        browser.goto(f"{url}/")
        home_page = browser.wait_text("Dag Processor", "Failed Dags")
        assert "import error" not in home_page.lower(), home_page
        browser.goto(f"{url}/dags/mlpipe_training")
        details = browser.wait_text("load_training_data", "train_model", "save_artifacts",
                                    "upload_model")
        assert "mlpipe_training" in details


def test_dagster_ui_lists_mlpipe_assets_without_load_errors(tmp_path: Path, browser: Any) -> None:
    home = tmp_path / "home"
    home.mkdir()
    with shots.dagster_ui(home) as url:
        locations = shots.dagster_location_page(browser, url)
        status = browser.wait_text("Loaded")
        assert "Failed" not in status and "Error" not in status, locations
        assets = shots.dagster_assets_page(browser, url)
        for name in (*shots.TRAINING_ASSETS, *shots.INFERENCE_ASSETS):
            assert name in assets
        browser.goto(f"{url}/locations/{shots.DAGSTER_LOCATION}/asset-groups/training")
        graph = browser.wait_text(*shots.TRAINING_ASSETS, "Asset checks")
        assert "Error" not in graph, graph
