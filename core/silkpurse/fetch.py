"""Inputs from the network: the fetch step that turns a URL into a local file.

:func:`fetch_input` is called before anything else reads an input. It returns a local path; the
rest of silkpurse (probing through :mod:`silkpurse.media.sources`' allow-list of container
demuxers, ``-protocol_whitelist file``) only ever sees local files.

- A local path is returned unchanged. Only ``http://``, ``https://`` and ``s3://`` are URLs;
  ``file:`` names, ``pipe:0.mp4``, ``12:30.mp4`` or ``-i.mp4`` stay file names. Any other
  ``scheme://`` is refused.
- ``http(s)://``: streamed with ``httpx`` into ``<work>/downloads/<sha256 of the URL>/``. The
  bytes go to ``download.partial``; when complete it is renamed to its final name. A dropped or
  timed-out transfer is retried (``download_retries``) and resumed with ``Range`` (and
  ``If-Range`` on the server's validator, so a changed file restarts instead of being spliced)
  where the server accepts ranges; a later run resumes the same ``.partial``. A finished
  download is reused when the server answers ``304 Not Modified`` to a conditional request.
  Bounded by ``max_download_bytes`` (Content-Length up front, then the bytes as they arrive),
  ``download_timeout_s`` (connect and each read) and ``max_redirects``.
- A web page (``text/html``) goes through ``yt-dlp`` (the optional extra
  ``silkpurse[download]``, imported only then): best video and audio (``bv*+ba/b``), subtitles
  embedded, merged or remuxed into MKV by ffmpeg, size-bounded, then renamed into place. Other
  non-media answers (JSON, text, XML) are refused.
- ``s3://bucket/key``: read through the configured object store (``SILKPURSE_S3_*``). The bucket
  must be ``SILKPURSE_S3_BUCKET`` or one listed in ``SILKPURSE_S3_INPUT_BUCKETS``; the credentials
  are the store's, so this keeps an input URI from reaching any other bucket they can read.

The job's resume keys hash the input file's content, so a downloaded input resumes by what was
downloaded, not by its URL.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import mimetypes
import os
import re
import shutil
import time
from collections.abc import Callable, Iterator
from email.message import Message
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx

from silkpurse import __version__
from silkpurse.errors import DownloadError, InputError
from silkpurse.settings import Settings, get_settings

Progress = Callable[[int, int | None], None]
"""``progress(bytes_done, bytes_total_or_None)``, called as a download advances."""

URL_SCHEMES = ("http", "https", "s3")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_PARTIAL = "download.partial"
_STATE = "download.json"
_NOT_MEDIA = ("application/json", "application/xml", "application/javascript", "application/ld+json")
_PAGES = ("text/html", "application/xhtml+xml")
_LIMIT_FIX = "raise --max-download-size or SILKPURSE_MAX_DOWNLOAD_BYTES"


def url_scheme(name: str | Path) -> str | None:
    """The URL scheme of ``name`` (lower case) when it is a URL silkpurse reads, else ``None``.
    Any other ``scheme://`` (``ftp://``, ``rtsp://``...) is an :class:`InputError`; ``file:`` names
    are local files."""
    if isinstance(name, Path):
        return None
    match = _SCHEME.match(name)
    if match is None:
        return None
    scheme = match.group(1).lower()
    if scheme == "file":
        return None
    if scheme not in URL_SCHEMES:
        raise InputError(
            f"{_shown(name)} has an unsupported scheme {scheme}://", "give a local file, http(s):// or s3://"
        )
    return scheme


def is_url(name: str | Path) -> bool:
    return url_scheme(name) is not None


def download_folder(uri: str, settings: Settings) -> Path:
    """Where ``uri`` is downloaded: ``<work>/downloads/<sha256 of the URI>``."""
    return settings.work_dir / "downloads" / hashlib.sha256(uri.encode()).hexdigest()


def fetch_input(uri: str | Path, settings: Settings | None = None, *, progress: Progress | None = None) -> Path:
    """A local path for ``uri``: the path itself, or the complete downloaded copy of a URL."""
    scheme = url_scheme(uri)
    if scheme is None:
        return Path(uri)
    assert isinstance(uri, str)
    settings = settings or get_settings()
    folder = download_folder(uri, settings)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise InputError(
            f"cannot create the downloads folder {folder} ({err.strerror})", "set --work-dir or SILKPURSE_WORK_DIR"
        ) from None
    with _folder_lock(folder, uri):
        if scheme == "s3":
            return _fetch_s3(uri, folder, settings, progress)
        return _HttpDownload(uri, folder, settings, progress).run()


# -- http(s) --------------------------------------------------------------------------------------


class _HttpDownload:
    def __init__(self, url: str, folder: Path, settings: Settings, progress: Progress | None) -> None:
        self.url, self.folder, self.settings, self.progress = url, folder, settings, progress
        self.partial = folder / _PARTIAL
        self.limit = settings.max_download_bytes
        self.state: dict[str, Any] = _read_state(folder)

    def run(self) -> Path:
        page = self.folder / str(self.state.get("complete"))
        if self.state.get("page") and page.is_file():
            self._check_size(page.stat().st_size)
            return page  # a page's video, downloaded before: reused as is (remove the folder to refresh)
        timeout = httpx.Timeout(self.settings.download_timeout_s, connect=min(10.0, self.settings.download_timeout_s))
        headers = {"User-Agent": f"silkpurse/{__version__}", "Accept-Encoding": "identity"}
        with httpx.Client(
            follow_redirects=True, max_redirects=self.settings.max_redirects, timeout=timeout, headers=headers
        ) as client:
            for attempt in range(self.settings.download_retries + 1):
                try:
                    return self._attempt(client)
                except DownloadError:
                    if attempt == self.settings.download_retries:
                        raise
                    time.sleep(min(2.0, 0.25 * 2**attempt))
        raise AssertionError("unreachable")

    def _attempt(self, client: httpx.Client) -> Path:
        request_headers = self._conditions()
        try:
            with client.stream("GET", self.url, headers=request_headers) as response:
                return self._receive(response)
        except httpx.TooManyRedirects:
            raise InputError(
                f"{_shown(self.url)} redirects more than {self.settings.max_redirects} times",
                "give the final address of the file",
            ) from None
        except (httpx.TransportError, httpx.StreamError) as err:
            raise DownloadError(
                f"could not download {_shown(self.url)} ({_reason(err, self.settings)})",
                "check the address and the network; run again to resume"
                if self.partial.exists()
                else "check the address and the network",
            ) from None
        except OSError as err:
            raise InputError(
                f"cannot write the download of {_shown(self.url)} to {self.folder} ({err.strerror})",
                "free disk space or set --work-dir (SILKPURSE_WORK_DIR) to a larger disk",
            ) from None

    def _conditions(self) -> dict[str, str]:
        """Headers asking for only what is missing: nothing new (a finished copy), or the rest
        of the partial file."""
        validator = self.state.get("etag") or self.state.get("last_modified")
        final = self._final()
        if final is not None:
            if self.state.get("etag"):
                return {"If-None-Match": self.state["etag"]}
            if self.state.get("last_modified"):
                return {"If-Modified-Since": self.state["last_modified"]}
            return {}
        have = self.partial.stat().st_size if self.partial.exists() else 0
        if have and self.state.get("ranges"):
            headers = {"Range": f"bytes={have}-"}
            if validator:
                headers["If-Range"] = validator
            return headers
        return {}

    def _final(self) -> Path | None:
        name = self.state.get("complete")
        path = self.folder / name if isinstance(name, str) else None
        return path if path is not None and path.is_file() else None

    def _receive(self, response: httpx.Response) -> Path:
        final = self._final()
        if response.status_code == 304 and final is not None:
            self._check_size(final.stat().st_size)
            return final
        if response.status_code == 416:  # the partial file is not a prefix of this one
            self.partial.unlink(missing_ok=True)
            raise DownloadError(f"could not resume {_shown(self.url)} (HTTP 416)", "run again to restart it")
        if response.status_code >= 400:
            what = f"could not download {_shown(self.url)} (HTTP {response.status_code} {response.reason_phrase})"
            if response.status_code >= 500:
                raise DownloadError(what, "the server is failing; try again later")
            raise InputError(what, "check the address")
        content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type in _PAGES:
            response.close()
            return _fetch_page(self.url, self.folder, self.settings, self.progress)
        if content_type.startswith("text/") or content_type in _NOT_MEDIA:
            raise InputError(
                f"{_shown(self.url)} answered with {content_type}, not a video or audio file",
                "give a direct link to the media file",
            )
        resumed = response.status_code == 206
        start = _range_start(response) if resumed else 0
        if resumed and (start is None or not self.partial.exists() or start != self.partial.stat().st_size):
            self.partial.unlink(missing_ok=True)
            raise DownloadError(f"could not resume {_shown(self.url)} (unexpected range)", "run again to restart it")
        total = _entity_size(response)
        if total is not None:
            self._check_size(total)
        name = _file_name(self.url, response, content_type)
        if not resumed:
            self.state = {
                "url": self.url,
                "name": name,
                "etag": _strong(response.headers.get("etag")),
                "last_modified": response.headers.get("last-modified"),
                "ranges": response.headers.get("accept-ranges", "").lower() == "bytes",
            }
            _write_state(self.folder, self.state)
        done = start or 0
        with self.partial.open("ab" if resumed else "wb") as f:
            for chunk in response.iter_raw():  # as it arrives: nothing held back from the partial file
                done += len(chunk)
                if done > self.limit:
                    f.close()
                    self.partial.unlink(missing_ok=True)
                    raise InputError(f"{_shown(self.url)} is larger than the limit of {_human(self.limit)}", _LIMIT_FIX)
                f.write(chunk)
                if self.progress is not None:
                    self.progress(done, total)
            f.flush()
            os.fsync(f.fileno())
        if total is not None and done != total:
            raise DownloadError(f"could not download {_shown(self.url)} (it ended early)", "run again to resume")
        return self._publish(self.state.get("name") or name)

    def _check_size(self, size: int) -> None:
        if size > self.limit:
            raise InputError(
                f"{_shown(self.url)} is {_human(size)}, more than the limit of {_human(self.limit)}",
                _LIMIT_FIX,
            )

    def _publish(self, name: str) -> Path:
        final = self.folder / name
        self.partial.chmod(0o644)
        self.partial.replace(final)
        self.state["complete"] = name
        _write_state(self.folder, self.state)
        return final


def _range_start(response: httpx.Response) -> int | None:
    match = re.match(r"bytes (\d+)-\d+/(\d+|\*)", response.headers.get("content-range", ""))
    return int(match.group(1)) if match else None


def _entity_size(response: httpx.Response) -> int | None:
    """The whole file's size: Content-Range's total for a 206, else Content-Length."""
    if response.status_code == 206:
        match = re.match(r"bytes \d+-\d+/(\d+)", response.headers.get("content-range", ""))
        return int(match.group(1)) if match else None
    length = response.headers.get("content-length", "")
    return int(length) if length.isdigit() else None


def _strong(etag: str | None) -> str | None:
    """An ETag usable in If-Range (weak ones are not)."""
    return etag if etag and not etag.startswith("W/") else None


def _file_name(url: str, response: httpx.Response, content_type: str) -> str:
    """A safe local name: Content-Disposition's filename, else the URL's last path segment."""
    name = ""
    disposition = response.headers.get("content-disposition")
    if disposition:
        message = Message()
        message["content-disposition"] = disposition
        name = message.get_filename() or ""
    if not name:
        name = unquote(urlsplit(str(response.url)).path.rsplit("/", 1)[-1]) or unquote(
            urlsplit(url).path.rsplit("/", 1)[-1]
        )
    return _safe_name(name, mimetypes.guess_extension(content_type) or "" if content_type else "")


def _safe_name(name: str, suffix: str = "") -> str:
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(name).name).lstrip("._-")[-100:]
    if name in ("", _PARTIAL, _STATE) or name.endswith(".lock"):
        name = "input" + suffix
    return name


def _reason(err: Exception, settings: Settings) -> str:
    if isinstance(err, httpx.ConnectTimeout):
        return "connection timed out"
    if isinstance(err, httpx.TimeoutException):
        return f"no data for {settings.download_timeout_s:g} s"
    if isinstance(err, httpx.ConnectError):
        text = str(err).lower()
        if "name or service" in text or "nodename" in text or "resolution" in text:
            return "unknown host"
        return "connection refused" if "refused" in text else "cannot connect"
    if isinstance(err, httpx.UnsupportedProtocol):
        return "unsupported address"
    if isinstance(err, httpx.RemoteProtocolError | httpx.ReadError):
        return "connection dropped"
    return type(err).__name__


# -- web pages (yt-dlp) ---------------------------------------------------------------------------


def _fetch_page(url: str, folder: Path, settings: Settings, progress: Progress | None) -> Path:
    """Download the best video and audio of the page at ``url`` with yt-dlp, into one MKV."""
    try:
        import yt_dlp  # the optional extra silkpurse[download]
    except ImportError:
        raise InputError(
            f"{_shown(url)} is a web page, not a media file",
            "to download the video of a page, pip install 'silkpurse[download]'",
        ) from None
    final = folder / "page.mkv"
    scratch = folder / "page"
    scratch.mkdir(exist_ok=True)

    def hook(status: dict[str, Any]) -> None:
        if progress is not None and status.get("status") == "downloading":
            progress(int(status.get("downloaded_bytes") or 0), status.get("total_bytes") or None)

    options: dict[str, Any] = {
        "format": "bv*+ba/b",
        "outtmpl": {"default": "media.%(ext)s"},
        "paths": {"home": str(scratch), "temp": str(scratch)},
        "merge_output_format": "mkv",
        "writesubtitles": True,
        "subtitleslangs": ["all", "-live_chat"],
        "postprocessors": [
            {"key": "FFmpegVideoRemuxer", "preferedformat": "mkv"},
            {"key": "FFmpegEmbedSubtitle", "already_have_subtitle": False},
        ],
        "max_filesize": settings.max_download_bytes,
        "socket_timeout": settings.download_timeout_s,
        "retries": settings.download_retries,
        "noplaylist": True,
        "continuedl": True,
        "quiet": True,
        "no_warnings": True,
        "noprogress": True,
        "progress_hooks": [hook],
        "logger": _QuietLogger(),
    }
    if os.sep in settings.ffmpeg:
        options["ffmpeg_location"] = settings.ffmpeg
    try:
        with yt_dlp.YoutubeDL(options) as ydl:
            ydl.download([url])
    except yt_dlp.utils.DownloadError as err:
        text = re.sub(r"^(ERROR: )?(\[[^]]+\] )?", "", str(err)).splitlines()[0]
        if "Unsupported URL" in text or "no video formats" in text.lower():
            raise InputError(
                f"{_shown(url)} is a web page without a video yt-dlp can find", "give the video's URL"
            ) from None
        raise DownloadError(
            f"could not download {_shown(url)} with yt-dlp ({text[:200]})", "check the address"
        ) from None
    made = sorted(scratch.glob("media.mkv"))
    if not made:
        raise InputError(
            f"yt-dlp downloaded nothing from {_shown(url)}; the video may be larger than the limit of "
            f"{_human(settings.max_download_bytes)}",
            _LIMIT_FIX,
        )
    made[0].replace(final)
    _write_state(folder, {"url": url, "page": True, "complete": final.name})
    shutil.rmtree(scratch, ignore_errors=True)
    return final


class _QuietLogger:
    """yt-dlp's messages go nowhere: errors come back as exceptions, in one line."""

    def debug(self, msg: str) -> None: ...

    def info(self, msg: str) -> None: ...

    def warning(self, msg: str) -> None: ...

    def error(self, msg: str) -> None: ...


# -- s3:// ----------------------------------------------------------------------------------------


def _fetch_s3(uri: str, folder: Path, settings: Settings, progress: Progress | None) -> Path:
    parts = urlsplit(uri)
    bucket, key = parts.netloc, unquote(parts.path.lstrip("/"))
    if not bucket or not key or key.endswith("/"):
        raise InputError(f"{_shown(uri)} names no object", "give s3://bucket/key")
    allowed = {settings.s3_bucket, *(b.strip() for b in settings.s3_input_buckets.split(",") if b.strip())}
    if bucket not in allowed:
        raise InputError(
            f"{_shown(uri)} is in bucket {bucket}, which silkpurse may not read",
            f"use bucket {settings.s3_bucket} or add {bucket} to SILKPURSE_S3_INPUT_BUCKETS",
        )
    if not settings.s3_endpoint:
        raise InputError(f"{_shown(uri)} needs an object store", "set SILKPURSE_S3_ENDPOINT and its credentials")
    from silkpurse.s3 import S3Store

    store = S3Store.from_settings(settings)
    size, etag = store.stat_input(bucket, key)
    if size > settings.max_download_bytes:
        raise InputError(
            f"{_shown(uri)} is {_human(size)}, more than the limit of {_human(settings.max_download_bytes)}",
            _LIMIT_FIX,
        )
    final = folder / _safe_name(key)
    state = _read_state(folder)
    if final.is_file() and etag and state.get("etag") == etag and state.get("complete") == final.name:
        return final
    store.download_input(
        bucket,
        key,
        final,
        max_bytes=settings.max_download_bytes,
        progress=(lambda done: progress(done, size)) if progress is not None else None,
    )
    _write_state(folder, {"url": uri, "etag": etag, "complete": final.name})
    return final


# -- shared ---------------------------------------------------------------------------------------


def _human(size: int) -> str:
    """Decimal units, as --max-download-size takes them: 20 GB, 500 MB, 10 kB."""
    for unit, scale in (("TB", 10**12), ("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if size >= scale:
            return f"{size / scale:.3g} {unit}"
    return f"{size} bytes"


def _shown(url: str) -> str:
    """The URL as shown in messages: no user:password, query string cut short."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    shown = f"{parts.scheme}://{host}{parts.path}"
    return shown + ("?..." if parts.query else "")


def _read_state(folder: Path) -> dict[str, Any]:
    try:
        state = json.loads((folder / _STATE).read_text())
    except (OSError, ValueError):
        return {}
    return state if isinstance(state, dict) else {}


def _write_state(folder: Path, state: dict[str, Any]) -> None:
    from silkpurse.files import write_atomically

    write_atomically(folder / _STATE, lambda tmp: tmp.write_text(json.dumps(state)))


@contextlib.contextmanager
def _folder_lock(folder: Path, uri: str) -> Iterator[None]:
    """One download of a URL at a time: a second run fails at once instead of sharing the partial."""
    with (folder / ".lock").open("w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise InputError(f"another silkpurse is downloading {_shown(uri)}", "wait for it to finish") from None
        yield
