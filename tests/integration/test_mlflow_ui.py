"""`deepsift mlflow-ui` end to end: MLflow's server over a fresh home's embedded store, seen in Chromium.

A tiny untrained detector is registered as ``@champion`` in a temporary home, and the command runs
in a child process (its own process group) on a free port. The registered model's page, rendered by
headless Chromium (MLflow's UI is a React app: ``--virtual-time-budget`` lets its scripts fetch and
render before the DOM is dumped), must show the model, its version and the alias; the version's
files must come from the embedded artifact store through the server; the server must listen on
127.0.0.1 only, and SIGTERM must stop the command, and MLflow with it, leaving the port free.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import urllib.request
from html.parser import HTMLParser
from pathlib import Path

import yaml

from deepsift.config import load_config
from deepsift.detect.contract import PreprocessContract
from deepsift.registry.mlflow_models import embedded_store
from tests.browser import chromium
from tests.ports import free_port, listening_addresses
from tests.servers import deepsift_server
from tests.tiny_models import register_untrained_champion

READY_TIMEOUT_S = 300
RENDER_BUDGET_MS = 30_000
"""Virtual time Chromium gives the page's scripts; it does not run out while requests are pending."""


class RenderedPage(HTMLParser):
    """The document title, ``h2`` headings, link targets, ``title`` attributes and text of a dumped DOM."""

    def __init__(self, dom: str) -> None:
        super().__init__()
        self.title, self.headings, self.links, self.titles, self.texts = "", [], set(), set(), []
        self._open: list[str] = []
        self.feed(dom)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "a" and attributes.get("href"):
            self.links.add(attributes["href"])
        if attributes.get("title"):
            self.titles.add(attributes["title"])
        if tag == "h2":
            self.headings.append("")
        if tag in ("title", "h2", "svg"):
            self._open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if self._open and self._open[-1] == tag:
            self._open.pop()

    def handle_data(self, data: str) -> None:
        self.texts.append(data)
        if "title" in self._open and "svg" not in self._open:  # an SVG's <title> is not the page's
            self.title += data
        if "h2" in self._open:
            self.headings[-1] += data


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=60) as response:
        return response.read().decode("utf-8")


def test_mlflow_ui_shows_the_registered_detector_and_stops_on_sigterm(tmp_path: Path) -> None:
    home = tmp_path / "home"
    config = load_config(environ={}, overrides={"home": str(home)})
    version = register_untrained_champion(config, seed=0)
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("DEEPSIFT_")} | {
        "DEEPSIFT_HOME": str(home),
        "COLUMNS": "200",  # one line for the ready message, however long the URL
    }
    log = tmp_path / "mlflow-ui.log"
    with deepsift_server(["mlflow-ui", "--port", str(port)], env, log, READY_TIMEOUT_S) as process:
        page_url = f"http://127.0.0.1:{port}/#/models/{version.name}"
        assert f"ready: {page_url} (Ctrl-C stops it)" in log.read_text()
        assert listening_addresses(port) == {"127.0.0.1"}

        page = RenderedPage(chromium(f"--virtual-time-budget={RENDER_BUDGET_MS}", "--dump-dom", page_url).stdout)
        assert page.title == f"Model: {version.name} - MLflow"
        assert [heading.strip() for heading in page.headings] == [version.name]
        assert f"#/models/{version.name}/versions/{version.version}" in page.links
        assert "champion" in page.titles and "@\xa0champion" in page.texts

        api = f"http://127.0.0.1:{port}"
        source = json.loads(
            _get(f"{api}/ajax-api/2.0/mlflow/model-versions/get?name={version.name}&version={version.version}")
        )["model_version"]["source"]
        assert source.startswith(embedded_store(home).artifact_location + "/")
        files = f"{api}/model-versions/get-artifact?name={version.name}&version={version.version}&path="
        flavor = yaml.safe_load(_get(files + "MLmodel"))["flavors"]["python_function"]
        assert sorted(flavor["artifacts"]) == ["contract", "model_card", "state_dict"]
        assert PreprocessContract.from_json(_get(files + "artifacts/contract.json")) == version.contract

        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=90) == 0
    assert listening_addresses(port) == set()
    with socket.socket() as probe:  # free for the next server (which, like uvicorn, reuses the address)
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", port))
