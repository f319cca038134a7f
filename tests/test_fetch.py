"""Inputs from the network (silkpurse.fetch): URLs served by a loopback HTTP server, and s3://
URIs from the session's S3 server. Nothing here reaches any address but 127.0.0.1."""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import io
import json
import re
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cli_testing import assert_one_line_error, run_cli
from minio import Minio
from s3_server import S3Server

from silkpurse.errors import DownloadError, InputError
from silkpurse.fetch import download_folder, fetch_input, is_url, url_scheme
from silkpurse.settings import Settings

PAGE = """<!DOCTYPE html><html><head><title>A talk</title></head><body>
<video controls><source src="/clip.mp4" type="video/mp4">
<track kind="subtitles" src="/talk.en.vtt" srclang="en" label="English"></video></body></html>"""
SUBTITLES = b"WEBVTT\n\n00:00.000 --> 00:00.900\nHello from the talk\n"


@dataclass
class Site:
    """A loopback web server: ``/clip.mp4`` (Range and ETag), ``/drop/clip.mp4`` (drops the
    connection half-way the first time), ``/page.html`` (an HTML5 video), ``/data.json``,
    ``/missing.mp4`` (404), ``/huge.mp4`` (claims 50 GB), ``/endless.mp4`` (no length, never
    ends), ``/hang.mp4`` (headers, then nothing)."""

    clip: bytes
    port: int = 0
    requests: list[tuple[str, str | None]] = field(default_factory=list)
    dropped: set[str] = field(default_factory=set)
    not_modified: int = 0

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def ranges(self, path: str) -> list[str | None]:
        return [r for p, r in self.requests if p == path]


def _handler(site: Site) -> type[http.server.BaseHTTPRequestHandler]:
    etag = '"' + hashlib.sha256(site.clip).hexdigest()[:16] + '"'

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            site.requests.append((self.path, self.headers.get("Range")))
            if self.path in ("/clip.mp4", "/drop/clip.mp4"):
                self._clip()
            elif self.path == "/page.html":
                self._send(200, PAGE.encode(), "text/html; charset=utf-8")
            elif self.path == "/about.html":
                self._send(200, b"<html><body><p>No video here</p></body></html>", "text/html")
            elif self.path == "/talk.en.vtt":
                self._send(200, SUBTITLES, "text/vtt")
            elif self.path == "/data.json":
                self._send(200, b'{"video": "no"}', "application/json")
            elif self.path == "/huge.mp4":
                self.send_response(200)
                self.send_header("Content-Type", "video/mp4")
                self.send_header("Content-Length", str(50 * 10**9))
                self.end_headers()
            elif self.path == "/endless.mp4":
                self.send_response(200)
                self.send_header("Content-Type", "video/mp4")
                self.send_header("Connection", "close")
                self.end_headers()
                with contextlib.suppress(OSError):
                    for _ in range(64):
                        self.wfile.write(b"\0" * 65536)
            elif self.path == "/hang.mp4":
                self.send_response(200)
                self.send_header("Content-Type", "video/mp4")
                self.send_header("Content-Length", "1000")
                self.end_headers()
                self.wfile.flush()
                time.sleep(3)
            else:
                self._send(404, b"not here", "text/plain")

        def _clip(self) -> None:
            data, start = site.clip, 0
            if self.headers.get("If-None-Match") == etag:
                site.not_modified += 1
                self.send_response(304)
                self.send_header("ETag", etag)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
            if match and self.headers.get("If-Range", etag) == etag:
                start = int(match.group(1))
            self.send_response(206 if start else 200)
            self.send_header("Content-Type", "video/mp4")
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("ETag", etag)
            if start:
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            self.send_header("Content-Length", str(len(data) - start))
            self.end_headers()
            body = data[start:]
            if self.path.startswith("/drop/") and self.path not in site.dropped:
                site.dropped.add(self.path)
                self.wfile.write(body[: len(body) // 2])
                self.wfile.flush()
                self.close_connection = True
                with contextlib.suppress(OSError):
                    self.connection.shutdown(socket.SHUT_RDWR)
                return
            self.wfile.write(body)

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Handler


@pytest.fixture(scope="module")
def site(clip_with_audio: Path) -> Iterator[Site]:
    served = Site(clip_with_audio.read_bytes())
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(served))
    server.daemon_threads = True
    served.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield served
    server.shutdown()
    server.server_close()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(work_dir=tmp_path / "work", download_timeout_s=2.0, download_retries=0)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_only_http_https_and_s3_are_urls() -> None:
    for name in ("clip.mp4", "file:clip.mp4", "file:///tmp/clip.mp4", "pipe:0.mp4", "12:30.mp4", "-i.mp4"):
        assert not is_url(name), name
    assert [url_scheme(u) for u in ("http://h/a", "HTTPS://h/a", "s3://b/k")] == ["http", "https", "s3"]
    with pytest.raises(InputError, match="unsupported scheme ftp://"):
        fetch_input("ftp://127.0.0.1/clip.mp4")
    assert fetch_input(Path("pipe:0.mp4")) == Path("pipe:0.mp4")


def test_direct_url_is_downloaded_atomically_into_the_work_dir(site: Site, settings: Settings) -> None:
    path = fetch_input(site.url("/clip.mp4"), settings)
    assert path.read_bytes() == site.clip
    assert path.parent == download_folder(site.url("/clip.mp4"), settings) and path.name == "clip.mp4"
    assert not (path.parent / "download.partial").exists()
    # Fetched again: the server says the copy is current (If-None-Match -> 304), nothing is re-sent.
    before, mtime = site.not_modified, path.stat().st_mtime_ns
    assert fetch_input(site.url("/clip.mp4"), settings) == path
    assert site.not_modified == before + 1 and path.stat().st_mtime_ns == mtime


def test_interrupted_download_resumes_with_a_range_request(site: Site, tmp_path: Path) -> None:
    settings = Settings(work_dir=tmp_path / "work", download_timeout_s=2.0, download_retries=1)
    path = fetch_input(site.url("/drop/clip.mp4"), settings)
    assert path.read_bytes() == site.clip
    ranges = site.ranges("/drop/clip.mp4")
    assert ranges[0] is None and ranges[1] is not None and re.fullmatch(r"bytes=\d+-", ranges[1])
    assert int(ranges[1][6:-1]) > 0


def test_interrupted_download_is_resumed_by_the_next_run(site: Site, settings: Settings) -> None:
    url = site.url("/drop/clip.mp4")
    site.dropped.discard("/drop/clip.mp4")
    with pytest.raises(DownloadError, match="connection dropped.*run again to resume"):
        fetch_input(url, settings)
    partial = download_folder(url, settings) / "download.partial"
    assert 0 < partial.stat().st_size < len(site.clip)
    site.requests.clear()
    assert fetch_input(url, settings).read_bytes() == site.clip
    assert site.ranges("/drop/clip.mp4") == [f"bytes={len(site.clip) // 2}-"]


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/data.json", "answered with application/json, not a video or audio file"),
        ("/missing.mp4", "HTTP 404"),
        ("/huge.mp4", "is 50 GB, more than the limit of 1 MB"),
        ("/endless.mp4", "is larger than the limit of 1 MB"),
        ("/hang.mp4", "could not download .* \\(no data for 1 s\\)"),
    ],
)
def test_bad_answers_are_one_line_input_errors(site: Site, tmp_path: Path, path: str, message: str) -> None:
    settings = Settings(work_dir=tmp_path, download_timeout_s=1.0, download_retries=0, max_download_bytes=10**6)
    with pytest.raises(InputError, match=message) as err:
        fetch_input(site.url(path), settings)
    assert "\n" not in str(err.value) and err.value.exit_code == 3
    assert not (download_folder(site.url(path), settings) / "download.partial").exists() or path == "/hang.mp4"


def test_page_without_yt_dlp_says_how_to_install_it(
    site: Site, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(__import__("sys").modules, "yt_dlp", None)
    with pytest.raises(InputError, match=r"is a web page.*pip install 'silkpurse\[download\]'"):
        fetch_input(site.url("/page.html"), settings)


def test_page_url_goes_through_yt_dlp_into_mkv(site: Site, settings: Settings) -> None:
    pytest.importorskip("yt_dlp")
    path = fetch_input(site.url("/page.html"), settings)
    assert path.name == "page.mkv" and path.read_bytes()[:4] == b"\x1a\x45\xdf\xa3"  # EBML: Matroska
    from silkpurse.media.probe import probe

    info = probe(path)
    assert (info.width, info.height) == (96, 64)
    assert _stream_types(path) == ["video", "audio", "subtitle"]
    assert "Hello from the talk" in _subtitle_text(path)  # the page's subtitles, embedded


def test_page_without_a_video_is_a_one_line_error(site: Site, settings: Settings) -> None:
    pytest.importorskip("yt_dlp")
    with pytest.raises(InputError, match="is a web page without a video yt-dlp can find") as err:
        fetch_input(site.url("/about.html"), settings)
    assert "\n" not in str(err.value)


def _stream_types(path: Path) -> list[str]:
    done = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "stream=codec_type", "-of", "json", str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    return [s["codec_type"] for s in json.loads(done.stdout)["streams"]]


def _subtitle_text(path: Path) -> str:
    done = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(path), "-map", "0:s:0", "-f", "webvtt", "-"],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout


def test_enhance_from_a_url_matches_the_local_file(site: Site, clip_with_audio: Path, tmp_path: Path) -> None:
    fast = ["--scale", "1", "--interpolate", "1", "-q", "--work-dir", str(tmp_path / "work")]
    local = run_cli("enhance", str(clip_with_audio), "-o", str(tmp_path / "local.mp4"), *fast)
    assert local.returncode == 0, local.stderr
    remote = run_cli("enhance", site.url("/clip.mp4"), "-o", str(tmp_path / "remote.mp4"), *fast)
    assert remote.returncode == 0, remote.stderr
    assert (tmp_path / "remote.mp4").read_bytes() == (tmp_path / "local.mp4").read_bytes()
    # The job (and so every resume key) is named by the downloaded content, not by the URL.
    plans = [
        json.loads(run_cli("plan", src, "--json", *fast[:4]).stdout)["job"]
        for src in (str(clip_with_audio), site.url("/clip.mp4"))
    ]
    assert plans[0] == plans[1]


def test_enhance_from_a_page_url(site: Site, tmp_path: Path) -> None:
    pytest.importorskip("yt_dlp")
    out = tmp_path / "page.mp4"
    done = run_cli("enhance", site.url("/page.html"), "-o", str(out), "--scale", "1", "--interpolate", "1", "-q")
    assert done.returncode == 0, done.stderr
    assert out.stat().st_size > 0


def test_cli_errors_for_urls_are_one_line(site: Site, tmp_path: Path) -> None:
    out = str(tmp_path / "out.mp4")
    unreachable = f"http://127.0.0.1:{closed_port()}/clip.mp4"
    env = {"SILKPURSE_DOWNLOAD_RETRIES": "0"}
    assert_one_line_error(
        run_cli("enhance", unreachable, "-o", out, env=env), 3, "could not download", "connection refused"
    )
    assert_one_line_error(run_cli("probe", site.url("/data.json")), 3, "not a video or audio file")
    assert_one_line_error(
        run_cli("clean-audio", site.url("/clip.mp4"), "-o", out, "--max-download-size", "10K"),
        3,
        "more than the limit",
    )


def test_s3_input_from_the_configured_bucket(s3: S3Server, clip_with_audio: Path, tmp_path: Path) -> None:
    client = Minio(s3.endpoint, access_key=s3.access_key, secret_key=s3.secret_key, secure=False)
    if not client.bucket_exists(s3.bucket):
        client.make_bucket(s3.bucket)
    data = clip_with_audio.read_bytes()
    client.put_object(s3.bucket, "inputs/talk.mp4", io.BytesIO(data), len(data))  # no silkpurse checksum
    env = {**s3.env(), "SILKPURSE_WORK_DIR": str(tmp_path / "work")}
    probed = run_cli("probe", f"s3://{s3.bucket}/inputs/talk.mp4", "-q", env=env)
    assert probed.returncode == 0, probed.stderr
    assert json.loads(probed.stdout)["width"] == 96
    assert_one_line_error(
        run_cli("probe", "s3://someone-else/inputs/talk.mp4", env=env), 3, "bucket someone-else", "INPUT_BUCKETS"
    )
    assert_one_line_error(run_cli("probe", f"s3://{s3.bucket}/inputs/nothing.mp4", env=env), 3, "does not exist")
