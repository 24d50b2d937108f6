"""Screenshots of mlpipe's pipelines in the Airflow 3 and Dagster UIs, after real runs.

    python scripts/screenshots.py --out docs/images

Makes a fresh mlpipe home, runs the tiny training and inference pipelines through the Airflow and
Dagster runners (so the UIs have runs to show), starts ``airflow api-server`` + ``airflow
dag-processor`` on the metadata DB the Airflow runner used (simple auth manager, all admins) and
``dagster-webserver`` on the runner's ``DAGSTER_HOME``, all on 127.0.0.1 and free ports, drives
headless Chromium (Debian's ``chromium``) over the DevTools protocol, waits until each page shows
the DAG / asset names, and saves PNGs. Every service it starts is stopped, also on failure.
``tests/system/test_ui.py`` uses the same functions to check the UIs list mlpipe's DAGs and assets.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "configs" / "tiny"
#: Small enough that the four runs take well under a minute on 2 cores.
OVERRIDES = {"training": ["data.generated.n_samples=300", "training.epochs=1"],
             "inference": ["data.generated.n_samples=100"]}
AIRFLOW_DAGS = ("mlpipe_training", "mlpipe_inference")


def _assets(pipeline: str) -> tuple[str, ...]:
    """The asset names a pipeline's steps declare: the one description every runner reads."""
    from mlpipe.core.pipeline import resolve_pipeline

    return tuple(step.asset for step in resolve_pipeline(pipeline).steps)


TRAINING_ASSETS = _assets("training")
INFERENCE_ASSETS = _assets("inference")
DAGSTER_LOCATION = "mlpipe.adapters.dagster.definitions"
WIDTH, HEIGHT = 1400, 900


def find_chromium() -> str | None:
    """``$MLPIPE_CHROMIUM``, else Debian's ``chromium`` (or another Chrome) on PATH."""
    for name in (os.environ.get("MLPIPE_CHROMIUM"), "chromium", "chromium-browser",
                 "google-chrome"):
        if name and (path := shutil.which(name)):
            return path
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --------------------------------------------------------------------------- the runs


def write_configs(home: Path) -> dict[str, Path]:
    """The tiny configs, shrunk by ``OVERRIDES``, as files the services can read too."""
    import yaml

    from mlpipe.core import load_config

    out = home / "configs"
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name in ("training", "inference"):
        config = load_config(TINY / f"{name}.yaml", OVERRIDES[name])
        paths[name] = out / f"{name}.yaml"
        paths[name].write_text(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))
    return paths


def service_env(home: Path) -> dict[str, str]:
    """mlpipe's settings for the runs and the services: one home, its configs, one Dagster home."""
    configs = write_configs(home)
    env = dict(os.environ)
    env.update({
        "MLPIPE_HOME": str(home),
        "MLPIPE_TRAINING_CONFIG": str(configs["training"]),
        "MLPIPE_INFERENCE_CONFIG": str(configs["inference"]),
        "DAGSTER_HOME": str(home / "dagster-home"),
        "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
    })
    env.pop("MLPIPE_AIRFLOW_HOME", None)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    (home / "dagster-home").mkdir(parents=True, exist_ok=True)
    return env


def run_pipelines(home: Path, runners: tuple[str, ...] = ("airflow", "dagster")) -> None:
    """Training then inference on each runner, in one child process (imports paid once)."""
    env = service_env(home)
    code = (
        "import os, sys\n"
        "from mlpipe.core import load_config, resolve_pipeline, run_pipeline\n"
        "for runner in sys.argv[1:]:\n"
        "    for name in ('training', 'inference'):\n"
        "        cfg = load_config(os.environ[f'MLPIPE_{name.upper()}_CONFIG'])\n"
        "        run = run_pipeline(resolve_pipeline(name), cfg, runner=runner,\n"
        "                           home=os.environ['MLPIPE_HOME'], use_cache=False)\n"
        "        print(runner, name, run.run_id, flush=True)\n"
    )
    log = home / "runs.log"
    with log.open("w") as out:
        proc = subprocess.run([sys.executable, "-c", code, *runners], env=env, cwd=ROOT,
                              stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                              check=False)
    if proc.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
        raise RuntimeError(f"running the pipelines failed (exit {proc.returncode}); {log}:\n{tail}")


# --------------------------------------------------------------------------- services


@contextlib.contextmanager
def started(cmd: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A service in its own process group; the whole group is stopped on exit, whatever happens."""
    with log.open("ab") as out:
        proc = subprocess.Popen(cmd, env=env, cwd=log.parent, stdin=subprocess.DEVNULL,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield proc
    finally:
        stop(proc)


def stop(proc: subprocess.Popen[bytes], grace: float = 20) -> None:
    """SIGTERM the process group, SIGKILL what is left after ``grace`` seconds."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(grace)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def wait_http(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 120) -> None:
    """Until ``url`` answers 200; fails early, with the log's tail, if the service died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited {proc.returncode}; log {log}:\n"
                               + "\n".join(log.read_text(errors="replace").splitlines()[-30:]))
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=5) as resp:
            if resp.status == 200:
                return
        time.sleep(0.5)
    raise TimeoutError(f"{url} did not answer within {timeout:.0f} s; log {log}")


@contextlib.contextmanager
def airflow_ui(home: Path) -> Iterator[str]:
    """``airflow api-server`` and ``dag-processor`` on the Airflow runner's home; yields the URL.

    The dag processor parses ``dags/mlpipe_dags.py`` (copied into the runner's dags folder, with
    the same configs and mlpipe home), so the UI shows the shipped file's DAGs, its import errors
    if any, and the runs the runner made under the same DAG ids.
    """
    from mlpipe.adapters.airflow.runner import airflow_env, airflow_home_for

    af_home = airflow_home_for(home)
    (af_home / "dags").mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "dags" / "mlpipe_dags.py", af_home / "dags" / "mlpipe_dags.py")
    port = free_port()
    env = airflow_env(af_home, service_env(home))
    env.update({
        "AIRFLOW__API__HOST": "127.0.0.1", "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
        # parsing imports mlpipe (and pydantic, pyarrow...): on a loaded machine the first parse
        # took 35 s, past the 30 s default, and showed up as an import error
        "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "120",
        "AIRFLOW__DAG_PROCESSOR__DAG_FILE_PROCESSOR_TIMEOUT": "150",
    })
    airflow = str(Path(sys.executable).parent / "airflow")
    logs = home / "services"
    logs.mkdir(exist_ok=True)
    if not (af_home / "airflow.db").is_file():  # no runs yet: the services need a migrated DB
        with (logs / "airflow-db-migrate.log").open("wb") as out:
            subprocess.run([airflow, "db", "migrate"], env=env, stdin=subprocess.DEVNULL,
                           stdout=out, stderr=subprocess.STDOUT, check=True)
    with started([airflow, "dag-processor"], env, logs / "airflow-dag-processor.log"), \
            started([airflow, "api-server"], env, logs / "airflow-api-server.log") as api:
        url = f"http://127.0.0.1:{port}"
        wait_http(f"{url}/api/v2/monitor/health", api, logs / "airflow-api-server.log")
        wait_parsed(af_home, timeout=120)
        yield url


def wait_parsed(af_home: Path, timeout: float) -> None:
    """Until the dag processor has stored ``mlpipe_dags.py``'s DAGs; else fails with the
    file's import error, if there is one."""
    import sqlite3

    db = af_home / "airflow.db"
    deadline = time.monotonic() + timeout
    errors: list[str] = []
    while time.monotonic() < deadline:
        with contextlib.suppress(sqlite3.Error), contextlib.closing(sqlite3.connect(db)) as con:
            rows = con.execute("select count(*) from dag where relative_fileloc = "
                               "'mlpipe_dags.py' and is_stale = 0").fetchone()
            if rows[0] >= len(AIRFLOW_DAGS):
                return
            errors = [r[0] for r in con.execute("select stacktrace from import_error where "
                                                "filename like '%mlpipe_dags.py'")]
        time.sleep(1)
    raise TimeoutError(f"the dag processor did not load mlpipe_dags.py's DAGs in {timeout:.0f} s"
                       + (f"; import error:\n{errors[-1]}" if errors else ""))


@contextlib.contextmanager
def dagster_ui(home: Path) -> Iterator[str]:
    """``dagster-webserver`` on mlpipe's definitions and the runner's ``DAGSTER_HOME``."""
    port = free_port()
    log = home / "services" / "dagster-webserver.log"
    log.parent.mkdir(exist_ok=True)
    cmd = [str(Path(sys.executable).parent / "dagster-webserver"), "-m", DAGSTER_LOCATION,
           "-h", "127.0.0.1", "-p", str(port)]
    with started(cmd, service_env(home), log) as proc:
        url = f"http://127.0.0.1:{port}"
        wait_http(f"{url}/server_info", proc, log)
        yield url


# --------------------------------------------------------------------------- the browser


class Browser:
    """Headless Chromium driven over the DevTools protocol (one page, fixed viewport)."""

    def __init__(self, chromium: str, width: int = WIDTH, height: int = HEIGHT) -> None:
        import websocket  # websocket-client

        self._profile = tempfile.TemporaryDirectory(prefix="mlpipe-chromium-")
        self._log = open(Path(self._profile.name) / "chromium.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--disable-dev-shm-usage", "--hide-scrollbars", "--remote-debugging-port=0",
             "--remote-allow-origins=*", f"--user-data-dir={self._profile.name}",
             f"--window-size={width},{height}", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
            start_new_session=True)
        try:
            port = self._devtools_port()
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:
                page = next(t for t in json.load(r) if t["type"] == "page")
            self._ws = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=60,
                                                   suppress_origin=True)
            self._id = 0
            self.send("Page.enable")
            self.send("Emulation.setDeviceMetricsOverride", width=width, height=height,
                      deviceScaleFactor=1, mobile=False)
        except BaseException:
            self.close()
            raise

    def _devtools_port(self, timeout: float = 30) -> int:
        active = Path(self._profile.name) / "DevToolsActivePort"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"chromium exited {self.proc.returncode}")
            if active.is_file() and (lines := active.read_text().split()):
                return int(lines[0])
            time.sleep(0.1)
        raise TimeoutError("chromium did not open its DevTools port")

    def send(self, method: str, **params: Any) -> dict[str, Any]:
        self._id += 1
        self._ws.send(json.dumps({"id": self._id, "method": method, "params": params}))
        while True:
            msg = json.loads(self._ws.recv())
            if msg.get("id") == self._id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return dict(msg.get("result", {}))

    def goto(self, url: str) -> None:
        self.send("Page.navigate", url=url)

    def js(self, expression: str) -> Any:
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True,
                           awaitPromise=True)
        return result.get("result", {}).get("value")

    def text(self) -> str:
        """The page's rendered text (``document.body.innerText``)."""
        return str(self.js("document.body ? document.body.innerText : ''") or "")

    def dom(self) -> str:
        """The rendered DOM, as ``chromium --dump-dom`` prints it."""
        return str(self.js("document.documentElement.outerHTML") or "")

    def wait_text(self, *needles: str, timeout: float = 90, reload_every: float = 20) -> str:
        """Until every needle is in the page's text; returns the text.

        The UIs fetch their lists once per page load, so the page is reloaded every
        ``reload_every`` seconds while a needle is missing (a service still catching up).
        """
        started = time.monotonic()
        reloaded = started
        text = ""
        while time.monotonic() - started < timeout:
            text = self.text()
            if all(n in text for n in needles):
                return text
            if time.monotonic() - reloaded > reload_every:
                self.send("Page.reload")
                reloaded = time.monotonic()
            time.sleep(0.5)
        missing = [n for n in needles if n not in text]
        raise TimeoutError(f"{self.js('location.href')} never showed {missing}; it shows:\n"
                           f"{text[:1500]}")

    def click(self, selector: str, timeout: float = 60) -> None:
        """Click the first element matching the CSS ``selector``, once it has rendered."""
        deadline = time.monotonic() + timeout
        while not self.js(f"(() => {{ const e = document.querySelector({json.dumps(selector)});"
                          " if (!e) return false; e.click(); return true; })()"):
            if time.monotonic() > deadline:
                raise LookupError(f"no element {selector!r} on {self.js('location.href')}")
            time.sleep(0.5)

    def click_text(self, tag: str, text: str) -> bool:
        """Click the first ``tag`` element whose text is ``text``; False if there is none."""
        return bool(self.js(
            f"(() => {{ const e = Array.from(document.querySelectorAll({json.dumps(tag)}))"
            f".find(e => e.innerText.trim() === {json.dumps(text)});"
            " if (!e) return false; e.click(); return true; })()"))

    def screenshot(self, path: Path, settle: float = 1.5) -> Path:
        time.sleep(settle)  # let layout animations (graph zoom-to-fit) finish
        data = self.send("Page.captureScreenshot", format="png")["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._ws.close()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self._log.close()
        self._profile.cleanup()

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --------------------------------------------------------------------------- pages


def airflow_dags_page(browser: Browser, url: str) -> str:
    """The DAG list; returns its text once both mlpipe DAGs are listed."""
    browser.goto(f"{url}/dags")
    return browser.wait_text(*AIRFLOW_DAGS)


def airflow_import_errors(browser: Browser, url: str) -> list[dict[str, Any]]:
    """``GET /api/v2/importErrors`` from inside the UI's page (its session, all admins)."""
    browser.goto(f"{url}/")
    body = browser.js(f"fetch({json.dumps(url + '/api/v2/importErrors')}).then(r => r.text())")
    return list(json.loads(body)["import_errors"])


def airflow_shots(browser: Browser, url: str, out: Path) -> list[Path]:
    """Per DAG: its latest run in the grid view, then the same run in the graph view."""
    shots = []
    for dag_id, first_task, last_task in (("mlpipe_training", "load_training_data",
                                           "upload_model"),
                                          ("mlpipe_inference", "load_inference_data",
                                           "save_results")):
        short = dag_id.removeprefix("mlpipe_")
        browser.goto(f"{url}/dags/{dag_id}")
        browser.wait_text(dag_id, first_task, last_task)
        browser.click(f"a[href*='/dags/{dag_id}/runs/manual__']")  # the run's bar in the grid
        browser.click("button[aria-label^='Show Grid']")  # the view a previous page left
        browser.wait_text("Run Type", "Task Instances", "Success")
        shots.append(browser.screenshot(out / f"airflow-grid-{short}.png"))
        browser.click("button[aria-label^='Show Graph']")
        browser.wait_text(first_task, last_task)
        shots.append(browser.screenshot(out / f"airflow-graph-{short}.png", settle=3))
    return shots


def dagster_assets_page(browser: Browser, url: str) -> str:
    """The asset catalog; returns its text once every mlpipe asset is listed."""
    browser.goto(f"{url}/assets")
    return browser.wait_text(*TRAINING_ASSETS, *INFERENCE_ASSETS)


def dagster_location_page(browser: Browser, url: str) -> str:
    """The code locations page; returns its text once mlpipe's location is shown."""
    browser.goto(f"{url}/locations")
    return browser.wait_text(DAGSTER_LOCATION)


def dagster_shots(browser: Browser, url: str, out: Path) -> list[Path]:
    shots = []
    for group, assets in (("training", TRAINING_ASSETS), ("inference", INFERENCE_ASSETS)):
        browser.goto(f"{url}/locations/{DAGSTER_LOCATION}/asset-groups/{group}")
        browser.wait_text(*assets, "Materialized", "Passed")
        if browser.click_text("button", "Skip"):  # the first visit's "join the community" modal
            time.sleep(0.5)
        shots.append(browser.screenshot(out / f"dagster-assets-{group}.png", settle=3))
    return shots


def capture(out: Path, home: Path, chromium: str) -> list[Path]:
    """The whole job: runs, then each UI started, shot and stopped in turn."""
    print(f"running the tiny pipelines on airflow and dagster (home {home}) ...", flush=True)
    run_pipelines(home)
    shots: list[Path] = []
    with Browser(chromium) as browser:
        print("airflow: starting api-server and dag-processor ...", flush=True)
        with airflow_ui(home) as url:
            if errors := airflow_import_errors(browser, url):
                raise RuntimeError(f"Airflow import errors: {errors}")
            airflow_dags_page(browser, url)
            shots += airflow_shots(browser, url, out)
        print("dagster: starting dagster-webserver ...", flush=True)
        with dagster_ui(home) as url:
            dagster_location_page(browser, url)
            shots += dagster_shots(browser, url, out)
    return shots


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images",
                        help="folder for the PNGs (default docs/images)")
    parser.add_argument("--home", type=Path, default=None,
                        help="mlpipe home to create (must not exist; default a temporary one)")
    args = parser.parse_args(argv)
    chromium = find_chromium()
    if chromium is None:
        print("chromium not found: apt-get install -y chromium (or set MLPIPE_CHROMIUM)",
              file=sys.stderr)
        return 2
    if args.home is not None and args.home.exists():
        print(f"--home {args.home} exists: give a new folder", file=sys.stderr)
        return 2
    with contextlib.ExitStack() as stack:
        home = args.home or Path(stack.enter_context(
            tempfile.TemporaryDirectory(prefix="mlpipe-screenshots-")))
        home.mkdir(parents=True, exist_ok=True)
        for path in capture(args.out.resolve(), home.resolve(), chromium):
            print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
