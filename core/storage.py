"""The one storage layer: datasets, models, inference logs and drift reports are
objects under a root URI, addressed by a relative key such as ``models/x/manifest.json``.

``file:///abs/path`` (or a plain path) is the embedded default; ``s3://bucket/prefix``
works against any S3-compatible server, with the endpoint URL, region and credentials
read from the environment exactly as the AWS SDK reads them (``AWS_ENDPOINT_URL``,
``AWS_ENDPOINT_URL_S3``, ``AWS_ACCESS_KEY_ID``, ``AWS_PROFILE``, ...).

Both backends share one contract, checked by the same test suite:

* a write is atomic: a reader sees the old object or the new one, never a part;
* ``create_bytes`` writes only if the key is absent, atomically: of several writers
  racing for one key exactly one succeeds and the others get
  :class:`ObjectExistsError` (``os.link`` on files, ``If-None-Match: *`` on S3); the
  registry and the retrain claims are built on it;
* keys are relative ``/``-separated paths; ``..``, absolute keys and empty segments
  are refused, so no key can escape the root;
* ``list`` is recursive and sorted, and returns keys relative to the root;
* every backend failure is a one-line :class:`StorageError` naming the URI and the
  cause, and a missing key is an :class:`ObjectNotFoundError`.

boto3 is imported inside :class:`S3Storage` only: the scorer on a ``file://`` root
does not pay its import time.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit
from urllib.request import url2pathname

from core.errors import ObjectExistsError, ObjectNotFoundError, StorageError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import PaginatorConfigTypeDef

log = logging.getLogger(__name__)

# Temporary files of in-flight writes carry this prefix; `list` hides them and keys
# may not use it, so a half-written object can never be mistaken for a real one.
TEMP_PREFIX = ".tmp-storage-"

# Written objects get the permissions a plain `open(..., "w")` gives under the usual
# umask; mkstemp's 0600 would hide them from a reader running under another uid.
_FILE_MODE = 0o644

_CREDENTIALS_HINT = "check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY"


class Storage(Protocol):
    """Objects under one root URI. Keys are relative ``/``-separated paths."""

    uri: str

    def read_bytes(self, key: str) -> bytes:
        """The object's content; ObjectNotFoundError when it does not exist."""
        ...

    def write_bytes(self, key: str, data: bytes, *, content_type: str | None = None) -> None:
        """Create or replace the object atomically."""
        ...

    def create_bytes(self, key: str, data: bytes, *, content_type: str | None = None) -> None:
        """Create the object atomically if the key is absent; ObjectExistsError when
        it exists, so of several racing writers exactly one succeeds."""
        ...

    def exists(self, key: str) -> bool: ...

    def list(self, prefix: str = "") -> list[str]:
        """Every key starting with ``prefix`` (a plain string prefix, as in S3),
        recursively, sorted, relative to the root."""
        ...

    def delete(self, key: str) -> None:
        """Remove the object; a missing object is not an error."""
        ...

    def upload_file(self, local: Path, key: str) -> None:
        """Store a local file under ``key`` without reading it into memory."""
        ...

    def download_file(self, key: str, local: Path) -> None:
        """Copy the object to a local file, atomically replacing it."""
        ...

    def child(self, prefix: str) -> Storage:
        """A storage rooted at ``<root>/<prefix>``."""
        ...

    def url_for(self, key: str) -> str:
        """The full ``file://`` or ``s3://`` URI of a key, for logs and summaries."""
        ...


# --- keys -------------------------------------------------------------------------


def _invalid(root: str, what: str, value: str, problem: str) -> StorageError:
    where = f"{root}: " if root else ""
    return StorageError(f"{where}storage {what} {value!r}: {problem}")


def _check_path(root: str, what: str, value: str, segments: list[str]) -> None:
    if value.startswith("/"):
        raise _invalid(root, what, value, "must be relative (no leading '/')")
    if "\\" in value:
        raise _invalid(root, what, value, "backslashes are not allowed (use '/')")
    if "\x00" in value:
        raise _invalid(root, what, value, "NUL characters are not allowed")
    for segment in segments:
        if segment in (".", ".."):
            raise _invalid(root, what, value, f"{segment!r} segments are not allowed")
        if segment == "":
            raise _invalid(root, what, value, "empty segments ('//') are not allowed")
        if segment.startswith(TEMP_PREFIX):
            raise _invalid(root, what, value, f"names starting with {TEMP_PREFIX} are reserved")


def check_key(key: str, root: str = "") -> str:
    """The key itself, or StorageError when it could escape the root or name a folder.
    ``root`` only serves the error message."""
    if not isinstance(key, str) or not key:
        raise _invalid(root, "key", key, "must not be empty")
    _check_path(root, "key", key, key.split("/"))
    return key


def check_prefix(prefix: str, root: str = "") -> str:
    """A listing prefix: like a key, but may be empty and may end with '/'."""
    if not prefix:
        return ""
    segments = prefix.split("/")
    # The last segment is a partial name ("models/x" matches "models/xyz/...") and may
    # be empty when the prefix ends with '/'; it still may not climb out of the root.
    last = segments[-1]
    _check_path(root, "prefix", prefix, segments[:-1] + ([last] if last in (".", "..") else []))
    return prefix


def _folder_prefix(prefix: str, root: str = "") -> str:
    """``child`` roots are folders: "a/b" and "a/b/" both mean the folder a/b."""
    prefix = check_prefix(prefix, root)
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    return prefix


# --- local files ------------------------------------------------------------------


class FileStorage:
    """Objects as files under a local folder (a PersistentVolume in the cluster)."""

    def __init__(self, root: Path | str) -> None:
        # Absolute and normalised once, so url_for and error messages name the real place
        # even if the process later changes its working directory or the path has symlinks.
        self.root = Path(root).resolve()
        self.uri = self.root.as_uri()

    def __repr__(self) -> str:
        return f"FileStorage({self.uri!r})"

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*check_key(key, self.uri).split("/"))

    def url_for(self, key: str) -> str:
        return self._path(key).as_uri()

    def _fail(self, key: str, action: str, error: OSError) -> StorageError:
        reason = error.strerror or str(error)
        return StorageError(f"{self.url_for(key)}: cannot {action}: {reason.lower()}")

    def read_bytes(self, key: str) -> bytes:
        path = self._path(key)
        try:
            return path.read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as error:
            raise ObjectNotFoundError(f"{self.url_for(key)}: no such object") from error
        except OSError as error:
            raise self._fail(key, "read", error) from error

    def write_bytes(self, key: str, data: bytes, *, content_type: str | None = None) -> None:
        # content_type only matters to HTTP servers; a file carries none.
        self._atomic_write(key, lambda out: out.write(data))

    def create_bytes(self, key: str, data: bytes, *, content_type: str | None = None) -> None:
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            _link_atomically(path, lambda out: out.write(data))
        except FileExistsError as error:
            if path.is_dir():
                raise StorageError(
                    f"{self.url_for(key)}: cannot create: a folder has this name"
                ) from error
            raise ObjectExistsError(f"{self.url_for(key)}: already exists") from error
        except OSError as error:
            raise self._fail(key, "create", error) from error

    def upload_file(self, local: Path, key: str) -> None:
        with contextlib.ExitStack() as stack:
            try:
                source = stack.enter_context(Path(local).open("rb"))
            except OSError as error:
                raise StorageError(
                    f"{self.url_for(key)}: cannot read local file {local}: "
                    f"{(error.strerror or str(error)).lower()}"
                ) from error
            self._atomic_write(key, lambda out: shutil.copyfileobj(source, out))

    def _atomic_write(self, key: str, fill: Callable[[IO[bytes]], object]) -> None:
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            _replace_atomically(path, fill)
        except OSError as error:
            raise self._fail(key, "write", error) from error

    def download_file(self, key: str, local: Path) -> None:
        path = self._path(key)
        with contextlib.ExitStack() as stack:
            try:
                source = stack.enter_context(path.open("rb"))
            except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as error:
                raise ObjectNotFoundError(f"{self.url_for(key)}: no such object") from error
            except OSError as error:
                raise self._fail(key, "read", error) from error
            try:
                _replace_atomically(Path(local), lambda out: shutil.copyfileobj(source, out))
            except OSError as error:
                raise StorageError(
                    f"{self.url_for(key)}: cannot write local file {local}: "
                    f"{(error.strerror or str(error)).lower()}"
                ) from error

    def exists(self, key: str) -> bool:
        try:
            return self._path(key).is_file()
        except OSError as error:
            # is_file() already answers False for missing paths; this is e.g. EACCES,
            # which must not pass for "absent" (the registry would overwrite a version).
            raise self._fail(key, "check", error) from error

    def list(self, prefix: str = "") -> list[str]:
        prefix = check_prefix(prefix, self.uri)
        # Walk only the deepest folder the prefix names, then filter by the partial name.
        folder = self.root.joinpath(*prefix.split("/")[:-1]) if "/" in prefix else self.root
        keys = []
        for dirpath, _, filenames in os.walk(folder, onerror=_raise_unless_missing):
            relative = Path(dirpath).relative_to(self.root).as_posix()
            base = "" if relative == "." else relative + "/"
            for name in filenames:
                if name.startswith(TEMP_PREFIX):
                    continue  # an in-flight (or crashed) write, not an object
                key = base + name
                if key.startswith(prefix):
                    keys.append(key)
        return sorted(keys)

    def delete(self, key: str) -> None:
        path = self._path(key)
        try:
            path.unlink(missing_ok=True)
        except IsADirectoryError:
            # A folder is not an object: there is nothing to delete under this key.
            return
        except OSError as error:
            raise self._fail(key, "delete", error) from error

    def child(self, prefix: str) -> FileStorage:
        folder = _folder_prefix(prefix, self.uri)
        return FileStorage(self.root.joinpath(*folder.split("/")[:-1]))


def _raise_unless_missing(error: OSError) -> None:
    # os.walk skips unreadable folders silently by default: a listing that hides keys
    # would read as "no data" instead of "permission denied".
    if not isinstance(error, FileNotFoundError | NotADirectoryError):
        raise StorageError(
            f"{Path(error.filename).as_uri()}: cannot list: "
            f"{(error.strerror or str(error)).lower()}"
        ) from error


def _filled_temp(folder: Path, fill: Callable[[IO[bytes]], object]) -> Path:
    """A complete, fsynced hidden temp file in ``folder`` (the same file system as its
    final name, so a rename or link cannot cross file systems)."""
    fd, temp_name = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=folder)
    temp = Path(temp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            fill(out)
            out.flush()
            os.fchmod(out.fileno(), _FILE_MODE)
            os.fsync(out.fileno())
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return temp


def _replace_atomically(path: Path, fill: Callable[[IO[bytes]], object]) -> None:
    """Write through a temp file, then rename it over ``path``: readers see old or
    new, never a part, and a crash leaves at most a hidden temp file."""
    temp = _filled_temp(path.parent, fill)
    try:
        temp.replace(path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    _fsync_folder(path.parent)


def _link_atomically(path: Path, fill: Callable[[IO[bytes]], object]) -> None:
    """Create-if-absent: a complete temp file is hard-linked to ``path``, which fails
    with FileExistsError when the name is taken (unlike a rename, which replaces),
    and an open with O_EXCL would show a half-written file to readers."""
    temp = _filled_temp(path.parent, fill)
    try:
        os.link(temp, path)
    finally:
        temp.unlink(missing_ok=True)
    _fsync_folder(path.parent)


def _fsync_folder(folder: Path) -> None:
    # Makes the rename itself durable across a power loss; not every file system lets
    # a folder be opened or synced, and the data is already safe, so failures are ignored.
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


# --- S3 ---------------------------------------------------------------------------


class S3Storage:
    """Objects under ``s3://bucket/prefix`` on AWS or any S3-compatible server."""

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        client: S3Client | None = None,
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        max_attempts: int = 5,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
        page_size: int | None = None,
    ) -> None:
        if not bucket or "/" in bucket:
            raise StorageError(f"invalid S3 bucket name {bucket!r}")
        self.bucket = bucket
        self.prefix = _folder_prefix(prefix, f"s3://{bucket}/")
        self.uri = f"s3://{bucket}/{self.prefix}"
        # page_size only exists so tests can exercise pagination with few objects.
        self.page_size = page_size
        self.client: S3Client = client or _make_client(
            self.uri,
            endpoint_url=endpoint_url,
            region=region,
            max_attempts=max_attempts,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
        )

    def __repr__(self) -> str:
        return f"S3Storage({self.uri!r}, endpoint={self.endpoint_url!r})"

    @property
    def endpoint_url(self) -> str:
        return str(self.client.meta.endpoint_url)

    def _key(self, key: str) -> str:
        return self.prefix + check_key(key, self.uri)

    def url_for(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._key(key)}"

    @contextlib.contextmanager
    def _errors(self, url: str) -> Iterator[None]:
        try:
            yield
        except StorageError:
            raise
        except Exception as error:
            translated = _translate_s3_error(error, url, self.bucket, self.endpoint_url)
            if translated is None:
                raise
            raise translated from error

    def read_bytes(self, key: str) -> bytes:
        url = self.url_for(key)
        with self._errors(url):
            response = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
            return response["Body"].read()

    def write_bytes(self, key: str, data: bytes, *, content_type: str | None = None) -> None:
        # One PUT is atomic in S3: the object appears whole or not at all.
        extra: dict[str, Any] = {"ContentType": content_type} if content_type else {}
        with self._errors(self.url_for(key)):
            self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data, **extra)

    def create_bytes(self, key: str, data: bytes, *, content_type: str | None = None) -> None:
        # A conditional PUT: the server refuses it (412, or 409 when another
        # conditional write of the key is in flight) once the key exists.
        extra: dict[str, Any] = {"ContentType": content_type} if content_type else {}
        with self._errors(self.url_for(key)):
            self.client.put_object(
                Bucket=self.bucket, Key=self._key(key), Body=data, IfNoneMatch="*", **extra
            )

    def exists(self, key: str) -> bool:
        url = self.url_for(key)
        try:
            with self._errors(url):
                self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        except ObjectNotFoundError:
            # A HEAD has no body, so a missing bucket is a bare 404 as well: tell them
            # apart, or a typo in the bucket name would read as "no model yet".
            self._check_bucket(url)
            return False
        return True

    def _check_bucket(self, url: str) -> None:
        try:
            with self._errors(url):
                self.client.head_bucket(Bucket=self.bucket)
        except ObjectNotFoundError as error:
            raise StorageError(f"{url}: bucket {self.bucket!r} does not exist") from error

    def list(self, prefix: str = "") -> list[str]:
        full_prefix = self.prefix + check_prefix(prefix, self.uri)
        url = f"s3://{self.bucket}/{full_prefix}"
        pagination: PaginatorConfigTypeDef = {"PageSize": self.page_size} if self.page_size else {}
        keys = []
        with self._errors(url):
            paginator = self.client.get_paginator("list_objects_v2")
            pages = paginator.paginate(
                Bucket=self.bucket, Prefix=full_prefix, PaginationConfig=pagination
            )
            for page in pages:
                for item in page.get("Contents", []):
                    key = item["Key"][len(self.prefix) :]
                    # Folder markers ("x/") created by consoles and other tools are
                    # not objects; a file root has no such thing either.
                    if key and not key.endswith("/"):
                        keys.append(key)
        return sorted(keys)

    def delete(self, key: str) -> None:
        with self._errors(self.url_for(key)):
            self.client.delete_object(Bucket=self.bucket, Key=self._key(key))

    def upload_file(self, local: Path, key: str) -> None:
        # The managed transfer switches to multipart for large files; S3 makes the
        # object visible only when the upload completes, so this stays atomic.
        url = self.url_for(key)
        if not Path(local).is_file():
            raise StorageError(f"{url}: cannot read local file {local}: no such file")
        with self._errors(url):
            self.client.upload_file(str(local), self.bucket, self._key(key))

    def download_file(self, key: str, local: Path) -> None:
        # boto3 downloads into a temp file beside the target and renames it at the end.
        url = self.url_for(key)
        try:
            with self._errors(url):
                self.client.download_file(self.bucket, self._key(key), str(local))
        except ObjectNotFoundError:
            self._check_bucket(url)
            raise
        except OSError as error:
            raise StorageError(
                f"{url}: cannot write local file {local}: {(error.strerror or str(error)).lower()}"
            ) from error

    def child(self, prefix: str) -> S3Storage:
        # Clients are thread-safe and carry the connection pool: share, do not rebuild.
        return S3Storage(
            self.bucket,
            self.prefix + _folder_prefix(prefix, self.uri),
            self.client,
            page_size=self.page_size,
        )


def _make_client(
    uri: str,
    *,
    endpoint_url: str | None,
    region: str | None,
    max_attempts: int,
    connect_timeout: float,
    read_timeout: float,
) -> S3Client:
    import boto3.session
    from botocore.config import Config

    # A session of our own, not boto3's module-level default one: nothing is shared
    # between storages or leaks between tests. It reads AWS_ENDPOINT_URL(_S3), the
    # credentials chain and AWS_PROFILE the same way the AWS CLI does.
    session = boto3.session.Session()
    config = Config(
        s3={"addressing_style": "path"},
        # total_max_attempts counts the first try, so 1 means "no retry".
        retries={"total_max_attempts": max(1, max_attempts), "mode": "standard"},
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
    )
    try:
        return session.client(
            "s3",
            endpoint_url=endpoint_url or None,
            region_name=region or session.region_name or "us-east-1",
            config=config,
        )
    except Exception as error:
        # A malformed AWS_ENDPOINT_URL or a missing AWS_PROFILE surfaces here.
        raise StorageError(f"{uri}: cannot configure the S3 client: {_one_line(error)}") from error


_NOT_FOUND_CODES = frozenset({"NoSuchKey", "404", "NotFound"})
_EXISTS_CODES = frozenset({"PreconditionFailed", "412", "ConditionalRequestConflict"})
_ACCESS_CODES = frozenset(
    {
        "AccessDenied",
        "403",
        "Forbidden",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "InvalidToken",
        "ExpiredToken",
        "InvalidClientTokenId",
    }
)


def _translate_s3_error(
    error: Exception, url: str, bucket: str, endpoint: str
) -> StorageError | None:
    """A one-line StorageError for any boto error (None: not a storage failure, let it be)."""
    from boto3.exceptions import Boto3Error
    from botocore import exceptions as bx

    # boto3's transfer manager wraps the ClientError it got (S3UploadFailedError).
    cause: BaseException | None = error
    while cause is not None and not isinstance(cause, bx.ClientError | bx.BotoCoreError):
        cause = cause.__cause__ or cause.__context__

    if isinstance(cause, bx.ClientError):
        details = cause.response.get("Error", {})
        code = str(details.get("Code", ""))
        message = str(details.get("Message", "")).strip()
        if code in _NOT_FOUND_CODES:
            return ObjectNotFoundError(f"{url}: no such object")
        if code in _EXISTS_CODES:
            # Only create_bytes sends a conditional request.
            return ObjectExistsError(f"{url}: already exists")
        if code == "NoSuchBucket":
            return StorageError(f"{url}: bucket {bucket!r} does not exist")
        if code in _ACCESS_CODES:
            detail = f"{code}: {message.rstrip('.')}" if message else code
            return StorageError(f"{url}: access denied ({detail}; {_CREDENTIALS_HINT})")
        status = cause.response.get("ResponseMetadata", {}).get("HTTPStatusCode", "?")
        return StorageError(f"{url}: S3 error {code or status}: {_one_line(message or cause)}")
    if isinstance(cause, bx.NoCredentialsError | bx.PartialCredentialsError):
        return StorageError(f"{url}: no usable AWS credentials ({_CREDENTIALS_HINT})")
    if isinstance(cause, bx.ConnectTimeoutError):
        return StorageError(f"{url}: cannot reach endpoint {endpoint}: connection timed out")
    if isinstance(cause, bx.ReadTimeoutError):
        return StorageError(f"{url}: endpoint {endpoint} did not answer in time (read timeout)")
    if isinstance(cause, bx.EndpointConnectionError | bx.ConnectionClosedError):
        return StorageError(f"{url}: cannot reach endpoint {endpoint}: {_os_reason(cause)}")
    if isinstance(cause, bx.BotoCoreError):
        return StorageError(f"{url}: {_one_line(cause)}")
    if isinstance(error, Boto3Error):
        return StorageError(f"{url}: {_one_line(error)}")
    return None


def _os_reason(error: BaseException) -> str:
    """The operating system's words for a connection failure ("connection refused"),
    found under botocore's and urllib3's wrappers."""
    seen: list[BaseException] = []
    pending: list[BaseException | None] = [error]
    while pending:
        current = pending.pop()
        if current is None or any(current is known for known in seen):
            continue
        seen.append(current)
        if isinstance(current, OSError) and current.strerror:
            return current.strerror.lower()
        kwargs = getattr(current, "kwargs", None)
        inner = kwargs.get("error") if isinstance(kwargs, dict) else None
        pending += [current.__cause__, current.__context__]
        if isinstance(inner, BaseException):
            pending.append(inner)
    return _one_line(error)


def _one_line(value: object) -> str:
    return " ".join(str(value).split())


def create_once(
    storage: Storage, key: str, data: bytes, *, content_type: str | None = None
) -> None:
    """``create_bytes`` for content no other writer produces (it carries a random
    token). When the first attempt's answer is lost, the SDK retries and finds the
    object its own first attempt created: the object then holds exactly ``data``, and
    that is a success, not a lost race."""
    try:
        storage.create_bytes(key, data, content_type=content_type)
    except ObjectExistsError:
        try:
            if storage.read_bytes(key) == data:
                return
        except ObjectNotFoundError:
            pass
        raise


# --- URIs -------------------------------------------------------------------------


def open_storage(
    uri: str,
    *,
    max_attempts: int = 5,
    connect_timeout: float = 5.0,
    read_timeout: float = 30.0,
) -> Storage:
    """The storage for ``file:///abs/path``, a plain local path, or ``s3://bucket/prefix``.

    The S3 endpoint, region and credentials come from the environment; retries use
    botocore's standard mode (exponential backoff with jitter), ``max_attempts`` in all,
    so a dead endpoint fails within roughly
    ``max_attempts * connect_timeout`` plus a few seconds of backoff.
    """
    if not uri or not uri.strip():
        raise StorageError("empty storage URI (use file:///path or s3://bucket/prefix)")
    if "://" not in uri:
        if uri.lower().startswith(("file:", "s3:")):
            raise StorageError(
                f"malformed storage URI {uri!r} (use file:///path or s3://bucket/prefix)"
            )
        return FileStorage(Path(uri))
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if parts.query or parts.fragment:
        raise StorageError(f"storage URI {uri!r} must not have a query or fragment")
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise StorageError(
                f"storage URI {uri!r} names host {parts.netloc!r}: use file:///absolute/path "
                "(three slashes) or a plain path"
            )
        return FileStorage(Path(url2pathname(parts.path)))
    if scheme == "s3":
        if not parts.netloc:
            raise StorageError(f"storage URI {uri!r} has no bucket (use s3://bucket/prefix)")
        return S3Storage(
            parts.netloc,
            parts.path.lstrip("/"),
            max_attempts=max_attempts,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
        )
    raise StorageError(f"unsupported storage URI {uri!r} (use file:// or s3://)")


def wait_until_usable(uri: str, *, timeout: float, interval: float = 2.0) -> float:
    """Waits until listing the root works (the server answers, the bucket exists, the
    credentials are accepted) and returns the seconds waited; after ``timeout`` the
    last failure is raised. For a Job that starts together with its storage."""
    started = time.monotonic()
    while True:
        try:
            open_storage(uri, max_attempts=1).list("")
        except StorageError as error:
            waited = time.monotonic() - started
            if waited + interval > timeout:
                raise StorageError(f"still not usable after {waited:.0f} s: {error}") from error
            log.info("storage not usable yet", extra={"uri": uri, "problem": str(error)})
            time.sleep(interval)
        else:
            return time.monotonic() - started
