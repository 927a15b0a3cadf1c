"""Download the four BAAC tables of a year from data.gouv.fr.

The dataset page lists every file of every year as a "resource"; their titles and
names drift from year to year (``carcteristiques-2022.csv``, ``caract-2023.csv``,
``Caract_2024.csv``), so resources are picked with the same name rules the reader
uses (:func:`training.baac.classify_name`) rather than from a hard-coded URL list.

Files are written as the bytes the server sent, never decoded and re-encoded: the
double-encoded 2021 copy in circulation came from a script that let ``requests``
decode the CSV as Latin-1.
"""

from __future__ import annotations

import logging
import os
import re
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import unquote, urlsplit

import requests
from requests.adapters import HTTPAdapter
from tqdm import tqdm
from urllib3.util.retry import Retry

from training import baac
from training.errors import DownloadError

logger = logging.getLogger(__name__)

DATAGOUV_API = "https://www.data.gouv.fr/api/1"
DATASET_ID = "53698f4ca3a729239d2036df"
""""Bases de données annuelles des accidents corporels de la circulation routière".
The stable id, not the slug: the slug ends with the last year covered
(``...-annees-de-2005-a-2023``) and changes with every yearly release."""

_RETRY_STATUSES = (429, 500, 502, 503, 504)
_CHUNK_BYTES = 1 << 16


@dataclass(frozen=True)
class Resource:
    """One CSV file of the dataset, as the API lists it."""

    table: str
    year: int
    title: str
    url: str
    filename: str
    last_modified: str = ""


def _url_filename(url: str) -> str:
    return unquote(PurePosixPath(urlsplit(url).path).name)


def select_resources(payload: Mapping[str, Any], year: int) -> dict[str, Resource]:
    """The caracteristiques, lieux, usagers and vehicules CSVs of ``year`` among the
    resources of a data.gouv.fr dataset payload (``GET /api/1/datasets/<id>/``).

    A resource is recognised by its file name (from the URL) or its title, with the
    reader's rules. Should a table have several candidates (a re-upload), the most
    recently modified wins, then the URL in alphabetical order, so the choice is
    deterministic.
    """
    resources = payload.get("resources")
    if not isinstance(resources, list):
        raise DownloadError("unexpected data.gouv.fr answer: no 'resources' list")
    candidates: dict[str, list[Resource]] = {}
    for item in resources:
        if not isinstance(item, Mapping):
            continue
        url = str(item.get("url") or "")
        title = str(item.get("title") or "")
        if not url:
            continue
        for name in (_url_filename(url), title):
            kind = baac.classify_name(name)
            if kind is None or kind[1] != year:
                continue
            table = kind[0]
            filename = name if _safe_filename(name) else f"{table}-{year}.csv"
            candidates.setdefault(table, []).append(
                Resource(
                    table=table,
                    year=year,
                    title=title,
                    url=url,
                    filename=filename,
                    last_modified=str(item.get("last_modified") or ""),
                )
            )
            break
    missing = [t for t in baac.TABLES if t not in candidates]
    if missing:
        seen = sorted({r.filename for rs in candidates.values() for r in rs})
        raise DownloadError(
            f"data.gouv.fr lists no {', '.join(missing)} CSV for {year} "
            f"(found for {year}: {', '.join(seen) or 'nothing'})"
        )
    selected: dict[str, Resource] = {}
    for table in baac.TABLES:
        ranked = sorted(candidates[table], key=lambda r: r.url)
        ranked.sort(key=lambda r: _timestamp(r.last_modified), reverse=True)
        if len(ranked) > 1:
            logger.warning(
                "%d %s resources for %s; using %s", len(ranked), table, year, ranked[0].url
            )
        selected[table] = ranked[0]
    return selected


def _timestamp(value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return datetime.min.replace(tzinfo=UTC)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _safe_filename(name: str) -> bool:
    return bool(re.fullmatch(r"[\w.() -]+", name)) and name not in {".", ".."}


def make_session(retries: int = 3, backoff_factor: float = 0.5) -> requests.Session:
    """A session that retries connection failures and 429/5xx answers with
    exponential backoff (``backoff_factor * 2**n`` seconds)."""
    retry = Retry(
        total=retries,
        connect=retries,
        read=retries,
        status=retries,
        backoff_factor=backoff_factor,
        status_forcelist=_RETRY_STATUSES,
        allowed_methods=frozenset({"GET"}),
        raise_on_status=True,
    )
    session = requests.Session()
    adapter = HTTPAdapter(max_retries=retry)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


def download_year(
    year: int,
    out_dir: Path,
    *,
    retries: int = 3,
    timeout: float = 30,
    session: requests.Session | None = None,
    api_base: str = DATAGOUV_API,
    dataset: str = DATASET_ID,
    backoff_factor: float = 0.5,
) -> dict[str, Path]:
    """Download the four tables of ``year`` into ``out_dir``; their paths by table.

    Each file is streamed to a temporary name in ``out_dir`` and renamed into place
    once complete, so an interrupted download never leaves a truncated CSV that
    the reader would take for a real one.
    """
    out_dir = Path(out_dir)
    own_session = session is None
    http = make_session(retries, backoff_factor) if session is None else session
    try:
        payload = _get_json(http, f"{api_base.rstrip('/')}/datasets/{dataset}/", timeout)
        resources = select_resources(payload, year)
        out_dir.mkdir(parents=True, exist_ok=True)
        paths: dict[str, Path] = {}
        for table, resource in resources.items():
            destination = out_dir / resource.filename
            _download(
                http,
                resource.url,
                destination,
                timeout=timeout,
                attempts=retries + 1,
                backoff_factor=backoff_factor,
            )
            paths[table] = destination
        return paths
    finally:
        if own_session:
            http.close()


def _get_json(session: requests.Session, url: str, timeout: float) -> Mapping[str, Any]:
    try:
        response = session.get(url, timeout=timeout, headers={"Accept": "application/json"})
        response.raise_for_status()
        payload = response.json()
    except requests.RequestException as exc:
        raise _download_error(url, exc, timeout) from None
    except ValueError:
        raise DownloadError(f"{url}: the answer is not JSON") from None
    if not isinstance(payload, Mapping):
        raise DownloadError(f"{url}: unexpected JSON answer (not an object)")
    return payload


def _download(
    session: requests.Session,
    url: str,
    destination: Path,
    *,
    timeout: float,
    attempts: int,
    backoff_factor: float,
) -> None:
    # urllib3 retries failed connections and 5xx answers, but not a body cut off
    # mid-stream: that case is retried here, from the start.
    for attempt in range(1, attempts + 1):
        try:
            _stream_to(session, url, destination, timeout)
            return
        except (requests.exceptions.ChunkedEncodingError, requests.ConnectionError) as exc:
            if attempt == attempts:
                raise _download_error(url, exc, timeout) from None
            delay = backoff_factor * 2 ** (attempt - 1)
            logger.warning("%s: %s; retrying in %.1fs", url, _reason(exc), delay)
            time.sleep(delay)
        except requests.RequestException as exc:
            raise _download_error(url, exc, timeout) from None


def _stream_to(session: requests.Session, url: str, destination: Path, timeout: float) -> None:
    partial = destination.with_name(f".{destination.name}.{uuid.uuid4().hex[:8]}.part")
    try:
        with session.get(url, stream=True, timeout=timeout) as response:
            response.raise_for_status()
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            with (
                partial.open("wb") as sink,
                tqdm(
                    total=total,
                    unit="B",
                    unit_scale=True,
                    unit_divisor=1024,
                    desc=destination.name,
                    disable=None,  # no bar when stderr is not a terminal (Job logs)
                    leave=False,
                ) as bar,
            ):
                for chunk in response.iter_content(chunk_size=_CHUNK_BYTES):
                    sink.write(chunk)
                    bar.update(len(chunk))
                sink.flush()
                os.fsync(sink.fileno())
        partial.replace(destination)
        logger.info("downloaded %s -> %s", url, destination)
    finally:
        partial.unlink(missing_ok=True)


def _reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    errno = re.search(r"\[Errno -?\d+\][^'\")\]]*", text)
    if errno:
        return errno.group().strip()
    return text[:200] or type(exc).__name__


def _download_error(url: str, exc: requests.RequestException, timeout: float) -> DownloadError:
    host = urlsplit(url).netloc or url
    if isinstance(exc, requests.exceptions.RetryError):
        return DownloadError(f"{url}: still failing after retries ({_reason(exc)})")
    if isinstance(exc, requests.Timeout):
        return DownloadError(f"{url}: no answer within {timeout:g}s from {host}")
    if isinstance(exc, requests.exceptions.ChunkedEncodingError):
        return DownloadError(f"{url}: transfer interrupted ({_reason(exc)})")
    if isinstance(exc, requests.ConnectionError):
        return DownloadError(f"cannot reach {host}: {_reason(exc)} (are you offline?)")
    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        response = exc.response
        return DownloadError(f"{url}: HTTP {response.status_code} {response.reason}")
    return DownloadError(f"{url}: {_reason(exc)}")
