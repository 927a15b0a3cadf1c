"""BAAC download: resource selection on a recorded API payload, and the HTTP path
(retries, streaming, atomic files, offline errors) against a real ``http.server``
on 127.0.0.1. No test sends traffic anywhere else."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.support import LOOPBACK, free_port, serving
from training import baac, download
from training.errors import DownloadError

FIXTURES = Path(__file__).parent / "fixtures"
FAST = {"backoff_factor": 0.01, "timeout": 5}


def _payload(base: str = "http://127.0.0.1:9") -> dict[str, Any]:
    text = (FIXTURES / "datagouv_dataset.json").read_text(encoding="utf-8")
    return json.loads(text.replace("{base}", base))


@pytest.fixture(autouse=True)
def _loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """A proxy from the environment would route loopback requests elsewhere."""
    for name in (
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


# --- resource selection -------------------------------------------------------------


@pytest.mark.parametrize(
    ("year", "expected"),
    [
        (2019, ["caracteristiques-2019.csv", "lieux-2019.csv", "usagers-2019.csv",
                "vehicules-2019.csv"]),
        (2021, ["carcteristiques-2021.csv", "lieux-2021.csv", "usagers-2021.csv",
                "vehicules-2021.csv"]),
        (2022, ["carcteristiques-2022.csv", "lieux-2022.csv", "usagers-2022.csv",
                "vehicules-2022.csv"]),
        (2023, ["caract-2023.csv", "lieux-2023.csv", "usagers-2023.csv", "vehicules-2023.csv"]),
        (2024, ["Caract_2024.csv", "lieux-2024.csv", "usagers-2024.csv", "vehicules-2024.csv"]),
    ],
)  # fmt: skip
def test_select_resources_by_year(year: int, expected: list[str]) -> None:
    selected = download.select_resources(_payload(), year)
    assert list(selected) == list(baac.TABLES)
    assert [r.filename for r in selected.values()] == expected
    # The registered-vehicles table is another table, never the vehicules one.
    assert "immatricul" not in selected["vehicules"].url
    for table, resource in selected.items():
        assert baac.classify_name(resource.filename) == (table, year)


def test_select_resources_prefers_the_latest_upload() -> None:
    selected = download.select_resources(_payload(), 2023)
    assert selected["usagers"].url.endswith("/usagers-2023.csv")


def test_select_resources_names_what_is_missing() -> None:
    with pytest.raises(DownloadError) as caught:
        download.select_resources(_payload(), 2018)
    message = str(caught.value)
    assert "lists no usagers, vehicules CSV for 2018" in message
    assert "caracteristiques_2018.csv" in message and "\n" not in message


def test_select_resources_rejects_an_unexpected_payload() -> None:
    with pytest.raises(DownloadError, match="no 'resources' list"):
        download.select_resources({"message": "Not found"}, 2023)


# --- a fake data.gouv.fr on 127.0.0.1 -----------------------------------------------


@dataclass
class FakeDataGouv:
    """What the fake server answers, and what it was asked."""

    base: str = ""
    files: dict[str, bytes] = field(default_factory=dict)
    plan: dict[str, list[str]] = field(default_factory=dict)
    """Per path, behaviours used up one request at a time: "503", "truncate"."""
    requests: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def api(self) -> str:
        return f"{self.base}/api/1"

    def count(self, suffix: str) -> int:
        return sum(1 for path in self.requests if path.endswith(suffix))


def _handler(state: FakeDataGouv) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            with state.lock:
                state.requests.append(self.path)
                behaviours = state.plan.get(self.path) or []
                action = behaviours.pop(0) if behaviours else "ok"
            if self.path == f"/api/1/datasets/{download.DATASET_ID}/":
                body = json.dumps(_payload(state.base)).encode()
                content_type = "application/json"
            elif self.path.startswith("/files/") and self.path[7:] in state.files:
                body = state.files[self.path[7:]]
                content_type = "text/csv"  # no charset, as data.gouv.fr sends it
            else:
                action = "404"
            if action in {"404", "503"}:
                self.send_response(int(action))
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if action == "truncate":
                # Promise the whole body, send half of it, hang up.
                self.wfile.write(body[: len(body) // 2])
                self.close_connection = True
                return
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture
def datagouv(tiny_year) -> Iterator[FakeDataGouv]:
    state = FakeDataGouv()
    tiny = tiny_year(2023)
    names = {
        "caracteristiques": "caract-2023.csv",
        "lieux": "lieux-2023.csv",
        "usagers": "usagers-2023.csv",
        "vehicules": "vehicules-2023.csv",
    }
    for table, name in names.items():
        # Latin-1 bytes: the download must store them as sent, never re-encode.
        state.files[name] = tiny.text(table).encode("latin-1")
    server = ThreadingHTTPServer((LOOPBACK, 0), _handler(state))
    state.base = f"http://{LOOPBACK}:{server.server_address[1]}"
    with serving(server):
        yield state


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


@pytest.mark.servers
def test_download_year_streams_the_four_files(datagouv: FakeDataGouv, tmp_path: Path) -> None:
    out = tmp_path / "raw"
    paths = download.download_year(2023, out, api_base=datagouv.api, **FAST)
    assert {t: p.name for t, p in paths.items()} == {
        "caracteristiques": "caract-2023.csv",
        "lieux": "lieux-2023.csv",
        "usagers": "usagers-2023.csv",
        "vehicules": "vehicules-2023.csv",
    }
    for path in paths.values():
        assert path.read_bytes() == datagouv.files[path.name]
    assert _leftovers(out) == []
    # What was downloaded is what the reader reads.
    (raw,) = baac.read_raw(out)
    assert raw.year == 2023 and len(raw.caracteristiques) == 4
    assert raw.caracteristiques.loc[1, "adr"] == "Rue des Pèlerins"


@pytest.mark.servers
def test_download_retries_server_errors(datagouv: FakeDataGouv, tmp_path: Path) -> None:
    datagouv.plan["/files/usagers-2023.csv"] = ["503", "503"]
    datagouv.plan[f"/api/1/datasets/{download.DATASET_ID}/"] = ["503"]
    paths = download.download_year(2023, tmp_path, api_base=datagouv.api, retries=3, **FAST)
    assert paths["usagers"].read_bytes() == datagouv.files["usagers-2023.csv"]
    assert datagouv.count("/usagers-2023.csv") == 3
    assert datagouv.count(f"/datasets/{download.DATASET_ID}/") == 2


@pytest.mark.servers
def test_download_gives_up_after_retries(datagouv: FakeDataGouv, tmp_path: Path) -> None:
    datagouv.plan["/files/lieux-2023.csv"] = ["503"] * 10
    with pytest.raises(DownloadError) as caught:
        download.download_year(2023, tmp_path, api_base=datagouv.api, retries=2, **FAST)
    message = str(caught.value)
    assert "lieux-2023.csv: still failing after retries" in message and "\n" not in message
    assert datagouv.count("/lieux-2023.csv") == 3
    assert not (tmp_path / "lieux-2023.csv").exists()
    assert _leftovers(tmp_path) == []


@pytest.mark.servers
def test_download_restarts_a_truncated_transfer(datagouv: FakeDataGouv, tmp_path: Path) -> None:
    datagouv.plan["/files/vehicules-2023.csv"] = ["truncate"]
    paths = download.download_year(2023, tmp_path, api_base=datagouv.api, **FAST)
    assert paths["vehicules"].read_bytes() == datagouv.files["vehicules-2023.csv"]
    assert datagouv.count("/vehicules-2023.csv") == 2


@pytest.mark.servers
def test_truncated_every_time_leaves_no_partial_file(
    datagouv: FakeDataGouv, tmp_path: Path
) -> None:
    datagouv.plan["/files/vehicules-2023.csv"] = ["truncate"] * 10
    with pytest.raises(DownloadError, match="transfer interrupted"):
        download.download_year(2023, tmp_path, api_base=datagouv.api, retries=1, **FAST)
    assert not (tmp_path / "vehicules-2023.csv").exists()
    assert _leftovers(tmp_path) == []


@pytest.mark.servers
def test_download_unknown_dataset_is_a_clear_error(datagouv: FakeDataGouv, tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="HTTP 404"):
        download.download_year(
            2023, tmp_path, api_base=datagouv.api, dataset="no-such-dataset", **FAST
        )


@pytest.mark.servers
def test_download_year_absent_from_the_dataset(datagouv: FakeDataGouv, tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="lists no caracteristiques, lieux, usagers"):
        download.download_year(2030, tmp_path / "raw", api_base=datagouv.api, **FAST)
    assert not (tmp_path / "raw").exists()


def test_offline_is_one_clear_line(tmp_path: Path) -> None:
    # A loopback port nobody listens on: the closest offline we can get without
    # sending a packet anywhere.
    port = free_port()
    with pytest.raises(DownloadError) as caught:
        download.download_year(
            2023, tmp_path, api_base=f"http://{LOOPBACK}:{port}/api/1", retries=1, **FAST
        )
    message = str(caught.value)
    assert message.startswith(f"cannot reach {LOOPBACK}:{port}: ")
    assert message.endswith("(are you offline?)")
    assert "refused" in message.lower() and "\n" not in message
    assert list(tmp_path.iterdir()) == []
