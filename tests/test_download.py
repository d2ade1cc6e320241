"""aot_edu.download (resumable HTTP, Google Drive via gdown, verification, safe unzip) and the
dataset registry that drives it, aot_edu.data.sources (download_dataset exercises both).

No network: HTTP tests talk to a server on 127.0.0.1 started here, Google Drive tests use a
fake fetch (or a fake ``gdown.download``).
"""

from __future__ import annotations

import errno
import hashlib
import http.client
import io
import re
import socket
import ssl
import threading
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from aot_edu import download as dl
from aot_edu.data.sources import (
    DATASETS,
    DatasetArchive,
    DatasetSource,
    describe_datasets,
    download_dataset,
    get_dataset,
)
from aot_edu.download import (
    DownloadError,
    GoogleDriveError,
    UnsafeArchiveError,
    VerificationError,
    download_gdrive,
    download_url,
    extract_archive,
    read_sidecar,
)

PAYLOAD = bytes(range(256)) * 40  # 10,240 bytes, every byte value present
SHA = hashlib.sha256(PAYLOAD).hexdigest()


# --- a tiny HTTP server with optional Range support ------------------------------------------

@dataclass
class ServerState:
    files: dict[str, bytes] = field(default_factory=dict)
    support_range: bool = True
    send_length: bool = True
    cut_first: int | None = None  # first GET: declare the full length, send only this many bytes
    fail_first: int | None = None  # first GET: answer with this HTTP status
    requests: list[tuple[str, str | None]] = field(default_factory=list)  # (path, Range header)


class _Handler(BaseHTTPRequestHandler):
    state: ServerState

    def log_message(self, *args):  # keep pytest output clean
        pass

    def do_GET(self):
        state = self.server.state
        first = not state.requests
        state.requests.append((self.path, self.headers.get("Range")))
        if first and state.fail_first is not None:
            self.send_error(state.fail_first)
            return
        body = state.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        start, status = 0, 200
        requested = self.headers.get("Range")
        if requested and state.support_range:
            start = int(re.match(r"bytes=(\d+)-", requested).group(1))
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            status = 206
        chunk = body[start:]
        self.send_response(status)
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        if state.send_length:
            self.send_header("Content-Length", str(len(chunk)))
        self.end_headers()
        if first and state.cut_first is not None:
            chunk = chunk[: state.cut_first]
        self.wfile.write(chunk)
        self.wfile.flush()
        self.close_connection = True


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.state = ServerState(files={"/file.bin": PAYLOAD})
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.01},
                              daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.url = lambda path="/file.bin": base + path
    yield httpd
    httpd.shutdown()
    httpd.server_close()


@dataclass
class FakeClock:
    """The retry loops' clock: sleeping only advances ``now`` and is recorded."""

    now: float = 0.0
    sleeps: list[float] = field(default_factory=list)

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def monotonic(self) -> float:
        return self.now


@pytest.fixture(autouse=True)
def clock(monkeypatch) -> FakeClock:
    """No test here waits for real: every backoff goes to a fake clock."""
    fake = FakeClock()
    monkeypatch.setattr(dl, "_sleep", fake.sleep)
    monkeypatch.setattr(dl, "_monotonic", fake.monotonic)
    return fake


def fast(**kwargs):
    """Keyword arguments that keep retries instant and output quiet in tests."""
    return {"progress": False, "backoff": 0.0, "timeout": 5.0, **kwargs}


# --- download_url ------------------------------------------------------------------------------

def test_download_writes_file_and_sidecar(server, tmp_path):
    dest = tmp_path / "sub" / "file.bin"
    out = download_url(server.url(), dest, sha256=SHA, size=len(PAYLOAD), **fast())
    assert out == dest
    assert dest.read_bytes() == PAYLOAD
    assert read_sidecar(dest) == SHA
    assert dest.with_name("file.bin.sha256").read_text() == f"{SHA}  file.bin\n"
    assert not dest.with_name("file.bin.partial").exists()


def test_interrupted_transfer_resumes_in_next_run(server, tmp_path):
    server.state.cut_first = 3000
    dest = tmp_path / "file.bin"
    with pytest.raises(DownloadError, match="resumes") as info:
        download_url(server.url(), dest, sha256=SHA, **fast(retries=0))
    partial = tmp_path / "file.bin.partial"
    assert str(partial) in str(info.value)
    assert partial.stat().st_size == 3000 and not dest.exists()
    download_url(server.url(), dest, sha256=SHA, **fast(retries=0))
    assert dest.read_bytes() == PAYLOAD
    assert server.state.requests[-1][1] == "bytes=3000-"  # only the missing bytes were asked for


def test_interrupted_transfer_resumes_within_one_call(server, tmp_path):
    server.state.cut_first = 5000
    dest = tmp_path / "file.bin"
    download_url(server.url(), dest, sha256=SHA, size=len(PAYLOAD), **fast(retries=2))
    assert dest.read_bytes() == PAYLOAD
    assert [r for _, r in server.state.requests] == [None, "bytes=5000-"]


def test_server_ignoring_range_restarts_cleanly(server, tmp_path):
    server.state.support_range = False
    dest = tmp_path / "file.bin"
    # Stale bytes that do not belong to the file: appending the full body would corrupt it.
    (tmp_path / "file.bin.partial").write_bytes(b"\xff" * 1234)
    download_url(server.url(), dest, sha256=SHA, **fast())
    assert dest.read_bytes() == PAYLOAD
    assert server.state.requests == [("/file.bin", "bytes=1234-")]


def test_complete_partial_file_is_finished_without_refetching(server, tmp_path):
    dest = tmp_path / "file.bin"
    (tmp_path / "file.bin.partial").write_bytes(PAYLOAD)  # earlier run stopped before renaming
    download_url(server.url(), dest, sha256=SHA, **fast())
    assert dest.read_bytes() == PAYLOAD
    assert server.state.requests == [("/file.bin", f"bytes={len(PAYLOAD)}-")]  # answered 416


def test_checksum_mismatch_keeps_the_bytes_and_says_what_to_do(server, tmp_path):
    dest = tmp_path / "file.bin"
    with pytest.raises(VerificationError) as info:
        download_url(server.url(), dest, sha256="0" * 64, **fast())
    message = str(info.value)
    corrupt = tmp_path / "file.bin.corrupt"
    assert corrupt.read_bytes() == PAYLOAD  # nothing lost
    assert not dest.exists()
    assert "SHA-256" in message and str(corrupt) in message
    assert server.url() in message and str(dest) in message  # the manual route


def test_md5_is_checked(server, tmp_path):
    good = hashlib.md5(PAYLOAD).hexdigest()
    assert download_url(server.url(), tmp_path / "a.bin", md5=good, **fast()).is_file()
    with pytest.raises(VerificationError, match="MD5"):
        download_url(server.url(), tmp_path / "b.bin", md5="1" * 32, **fast())


def test_size_announced_by_server_must_match(server, tmp_path):
    with pytest.raises(DownloadError, match="expected"):
        download_url(server.url(), tmp_path / "file.bin", size=len(PAYLOAD) + 10, **fast())
    assert not (tmp_path / "file.bin").exists()


def test_size_checked_when_server_sends_no_length(server, tmp_path):
    server.state.send_length = False
    with pytest.raises(VerificationError, match="bytes, expected"):
        download_url(server.url(), tmp_path / "file.bin", size=len(PAYLOAD) + 10, **fast())
    assert (tmp_path / "file.bin.corrupt").read_bytes() == PAYLOAD


def test_complete_file_is_not_downloaded_again(server, tmp_path):
    dest = tmp_path / "file.bin"
    download_url(server.url(), dest, sha256=SHA, **fast())
    download_url(server.url(), dest, sha256=SHA, **fast())
    download_url(server.url(), dest, **fast())  # no hash given: the sidecar still vouches
    assert len(server.state.requests) == 1


def test_file_placed_by_hand_is_verified_and_recorded(server, tmp_path):
    dest = tmp_path / "file.bin"
    dest.write_bytes(PAYLOAD)
    download_url(server.url(), dest, sha256=SHA, **fast())
    assert server.state.requests == []
    assert read_sidecar(dest) == SHA


def test_corruption_after_download_is_detected_and_replaced(server, tmp_path):
    dest = tmp_path / "file.bin"
    download_url(server.url(), dest, **fast())  # no official hash: sidecar records it
    damaged = bytearray(PAYLOAD)
    damaged[100] ^= 0xFF
    dest.write_bytes(bytes(damaged))
    download_url(server.url(), dest, **fast())
    assert dest.read_bytes() == PAYLOAD
    assert (tmp_path / "file.bin.corrupt").read_bytes() == bytes(damaged)  # kept aside
    assert len(server.state.requests) == 2


def test_transient_http_error_is_retried(server, tmp_path):
    server.state.fail_first = 503
    download_url(server.url(), tmp_path / "file.bin", sha256=SHA, **fast(retries=1))
    assert len(server.state.requests) == 2


def test_missing_url_fails_at_once(server, tmp_path):
    with pytest.raises(DownloadError, match="HTTP 404"):
        download_url(server.url("/nope.bin"), tmp_path / "x.bin", **fast(retries=3))
    assert len(server.state.requests) == 1


def test_structural_check_failure_is_reported(server, tmp_path):
    def validate(path: Path) -> None:
        raise ValueError("no tensors in here")

    with pytest.raises(VerificationError, match="no tensors in here"):
        download_url(server.url(), tmp_path / "file.bin", validate=validate, **fast())
    assert (tmp_path / "file.bin.corrupt").exists()


# --- Google Drive ------------------------------------------------------------------------------

class FakeFetch:
    def __init__(self, payload: bytes = PAYLOAD, error: Exception | None = None):
        self.payload, self.error, self.calls = payload, error, []

    def __call__(self, file_id: str, output: Path, quiet: bool):
        self.calls.append((file_id, Path(output), quiet))
        if self.error is not None:
            raise self.error
        Path(output).write_bytes(self.payload)
        return str(output)


def test_gdrive_download_is_verified_and_recorded(tmp_path):
    fetch = FakeFetch()
    dest = tmp_path / "ckpt.pth"
    assert download_gdrive("FILE_ID", dest, sha256=SHA, fetch=fetch, progress=False) == dest
    assert dest.read_bytes() == PAYLOAD and read_sidecar(dest) == SHA
    (file_id, output, quiet), = fetch.calls
    assert file_id == "FILE_ID" and output == tmp_path / "ckpt.pth.download" and quiet
    download_gdrive("FILE_ID", dest, sha256=SHA, fetch=fetch, progress=False)
    assert len(fetch.calls) == 1  # verified copy reused


def test_gdrive_quota_error_gives_manual_link_and_path(tmp_path):
    import gdown.exceptions

    quota = gdown.exceptions.FileURLRetrievalError(
        "Failed to retrieve file url:\n\n\tToo many users have viewed or downloaded this file "
        "recently. Please try accessing the file again later.\n\nYou may still be able to "
        "access the file from the browser")
    dest = tmp_path / "AOTT_PRE_YTB_DAV.pth"
    with pytest.raises(GoogleDriveError) as info:
        download_gdrive("1owPmwV4owd", dest, fetch=FakeFetch(error=quota), progress=False)
    message = str(info.value)
    assert "https://drive.google.com/uc?id=1owPmwV4owd" in message
    assert str(dest) in message and "quota" in message
    assert not dest.exists()


def test_gdrive_network_error_says_where_the_next_run_starts(tmp_path):
    # nothing received: nothing to resume from (the message used to promise a resume anyway)
    with pytest.raises(GoogleDriveError, match="No bytes of it were received, so the next run "
                                               "starts from the beginning"):
        download_gdrive("ID", tmp_path / "x.pth", fetch=FakeFetch(error=ConnectionError("reset")),
                        progress=False)


class PartialFetch(FakeFetch):
    """gdown cut off mid-transfer: some bytes in its ``<output>XXXXXXXX.part`` file."""

    def __call__(self, file_id: str, output: Path, quiet: bool):
        self.calls.append((file_id, Path(output), quiet))
        Path(f"{output}abcd1234.part").write_bytes(PAYLOAD[:1000])
        raise ConnectionError("reset")


def test_gdrive_messages_say_what_was_kept_and_where_the_next_run_starts(tmp_path):
    dest = tmp_path / "x.pth"
    with pytest.raises(GoogleDriveError) as info:
        download_gdrive("ID", dest, fetch=PartialFetch(), progress=False)
    message = str(info.value)
    part = tmp_path / "x.pth.downloadabcd1234.part"
    assert f"The 1,000 bytes received so far are kept in {part}" in message
    assert "resumes from there" in message and ".." not in message


def test_a_truncated_final_file_is_moved_aside_and_the_message_says_so(tmp_path, capsys):
    # The reviewer's case: the bad file went to .corrupt and the download restarted from zero,
    # but the error said "Bytes received so far are kept and the next run resumes".
    dest = tmp_path / "x.pth"
    dest.write_bytes(PAYLOAD[:500])
    with pytest.raises(GoogleDriveError) as info:
        download_gdrive("ID", dest, sha256=SHA, fetch=FakeFetch(error=ConnectionError("reset.")),
                        progress=False)
    message = str(info.value)
    corrupt = tmp_path / "x.pth.corrupt"
    assert corrupt.read_bytes() == PAYLOAD[:500] and not dest.exists()  # kept, not deleted
    assert "failed: reset.\n" in message  # one full stop, not two
    assert "No bytes of it were received, so the next run starts from the beginning" in message
    assert (f"The earlier copy at {dest} failed verification and was moved to {corrupt} "
            "(kept; delete it when you no longer need it); a fresh download started from the "
            "first byte") in message
    assert message.index("The earlier copy") < message.index("What to do:")
    assert "kept and the next run resumes" not in message and ".." not in message
    printed = capsys.readouterr().err
    assert f"moved to {corrupt}" in printed and ".." not in printed.replace("...", "")


def test_gdrive_default_fetch_calls_gdown_with_resume(monkeypatch, tmp_path):
    import gdown

    calls = []

    def fake_download(**kwargs):
        calls.append(kwargs)
        Path(kwargs["output"]).write_bytes(PAYLOAD)
        return kwargs["output"]

    monkeypatch.setattr(gdown, "download", fake_download)
    download_gdrive("ABC", tmp_path / "f.pth", sha256=SHA, progress=False)
    (kwargs,) = calls
    assert kwargs["id"] == "ABC" and kwargs["resume"] is True
    assert kwargs["output"] == str(tmp_path / "f.pth.download")

    monkeypatch.setattr(gdown, "download", lambda **kwargs: None)  # gdown < 5 on failure
    with pytest.raises(GoogleDriveError):
        download_gdrive("ABC", tmp_path / "g.pth", progress=False)


def test_gdrive_wrong_content_is_kept_aside(tmp_path):
    page = b"<!DOCTYPE html><html>Google Drive - Virus scan warning</html>"
    with pytest.raises(VerificationError, match="SHA-256"):
        download_gdrive("ID", tmp_path / "x.pth", sha256=SHA, fetch=FakeFetch(page),
                        progress=False)
    assert (tmp_path / "x.pth.corrupt").read_bytes() == page


# --- archives ----------------------------------------------------------------------------------

def make_zip(entries: dict[str, bytes], symlinks: tuple[str, ...] = ()) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
        for name in symlinks:
            info = zipfile.ZipInfo(name)
            info.external_attr = (0o120777 << 16)
            zf.writestr(info, "/etc/passwd")
    return buffer.getvalue()


def test_extract_strips_prefix_and_runs_once(tmp_path):
    archive = tmp_path / "a.zip"
    archive.write_bytes(make_zip({"DAVIS/": b"", "DAVIS/x/1.txt": b"one",
                                  "__MACOSX/DAVIS/._1.txt": b"junk", "top.txt": b"top"}))
    dest = tmp_path / "out"
    assert extract_archive(archive, dest, strip_prefix="DAVIS/", progress=False) == dest
    assert (dest / "x" / "1.txt").read_bytes() == b"one"
    assert (dest / "top.txt").read_bytes() == b"top"  # members without the prefix stay as they are
    assert not (dest / "__MACOSX").exists()
    assert (dest / ".a.zip.extracted").is_file()
    (dest / "x" / "1.txt").write_bytes(b"edited")
    archive.unlink()  # the marker alone is enough
    extract_archive(archive, dest, strip_prefix="DAVIS/", progress=False)
    assert (dest / "x" / "1.txt").read_bytes() == b"edited"


@pytest.mark.parametrize("name", ["../evil.txt", "/abs/evil.txt", "ok/../../evil.txt",
                                  "..\\evil.txt", "C:/evil.txt"])
def test_extract_refuses_paths_escaping_the_folder(tmp_path, name):
    archive = tmp_path / "bad.zip"
    archive.write_bytes(make_zip({"fine.txt": b"fine", name: b"evil"}))
    dest = tmp_path / "deep" / "out"
    with pytest.raises(UnsafeArchiveError, match="Nothing was extracted"):
        extract_archive(archive, dest, progress=False)
    assert not dest.exists()  # checked before anything is written
    assert not any(p.name == "evil.txt" for p in tmp_path.rglob("*"))


def test_extract_refuses_symlinks(tmp_path):
    archive = tmp_path / "link.zip"
    archive.write_bytes(make_zip({"fine.txt": b"fine"}, symlinks=("link",)))
    with pytest.raises(UnsafeArchiveError, match="symbolic link"):
        extract_archive(archive, tmp_path / "out", progress=False)


def test_extract_reports_truncated_archive(tmp_path):
    data = make_zip({"a.txt": b"a" * 5000})
    archive = tmp_path / "cut.zip"
    archive.write_bytes(data[: len(data) // 2])
    with pytest.raises(DownloadError, match="not a complete zip"):
        extract_archive(archive, tmp_path / "out", progress=False)
    assert archive.exists()  # the user's bytes are left alone


def test_extract_detects_damaged_member_and_leaves_no_marker(tmp_path):
    data = bytearray(make_zip({"a.txt": b"abcdefgh" * 100}))
    index = data.find(b"abcdefgh")
    data[index] ^= 0xFF  # CRC no longer matches
    archive = tmp_path / "crc.zip"
    archive.write_bytes(bytes(data))
    with pytest.raises(DownloadError, match="damaged"):
        extract_archive(archive, tmp_path / "out", progress=False)
    assert not (tmp_path / "out" / ".crc.zip.extracted").exists()


# --- datasets ----------------------------------------------------------------------------------

DAVIS_LIKE = {
    "DAVIS/JPEGImages/480p/bear/00000.jpg": b"jpg",
    "DAVIS/Annotations/480p/bear/00000.png": b"png",
    "DAVIS/ImageSets/2017/val.txt": b"bear\n",
}


def local_source(url: str, name: str = "davis2017", required=None) -> DatasetSource:
    return DatasetSource(
        name=name, title="test", directory="DAVIS2017",
        archives=(DatasetArchive(
            part="trainval", filename="davis.zip", url=url, strip_prefix="DAVIS/",
            required=required or ("JPEGImages/480p", "Annotations/480p",
                                  "ImageSets/2017/val.txt"),
        ),),
        default_parts=("trainval",), homepage="https://example.invalid",
    )


def test_download_dataset_fetches_unpacks_and_skips_next_time(server, tmp_path):
    server.state.files["/davis.zip"] = make_zip(DAVIS_LIKE)
    source = local_source(server.url("/davis.zip"))
    folder = download_dataset(source, tmp_path, progress=False)
    assert folder == tmp_path / "DAVIS2017"
    assert (folder / "ImageSets" / "2017" / "val.txt").read_text() == "bear\n"
    assert (folder / "JPEGImages" / "480p" / "bear" / "00000.jpg").is_file()
    assert (tmp_path / "davis.zip").is_file()  # archive kept by default
    (tmp_path / "davis.zip").unlink()
    assert download_dataset(source, tmp_path, progress=False) == folder
    assert len(server.state.requests) == 1  # the extraction marker made the second call free


def test_download_dataset_can_remove_archive(server, tmp_path):
    server.state.files["/davis.zip"] = make_zip(DAVIS_LIKE)
    download_dataset(local_source(server.url("/davis.zip")), tmp_path, keep_archive=False,
                     progress=False)
    assert not (tmp_path / "davis.zip").exists()
    assert (tmp_path / "DAVIS2017" / "Annotations" / "480p").is_dir()


def test_download_dataset_reports_unexpected_layout(server, tmp_path):
    server.state.files["/davis.zip"] = make_zip({"Other/readme.txt": b"?"})
    with pytest.raises(DownloadError, match="ImageSets/2017/val.txt.*Other"):
        download_dataset(local_source(server.url("/davis.zip")), tmp_path, progress=False)


def test_damaged_dataset_archive_is_moved_aside(server, tmp_path):
    server.state.files["/davis.zip"] = b"PK\x03\x04 definitely not a whole zip"
    with pytest.raises(DownloadError, match="run the same command again"):
        download_dataset(local_source(server.url("/davis.zip")), tmp_path, progress=False)
    assert (tmp_path / "davis.zip.corrupt").is_file() and not (tmp_path / "davis.zip").exists()


def test_davis2016_gets_sequence_lists(server, tmp_path):
    lines = "".join(f"/JPEGImages/480p/{seq}/{i:05d}.jpg /Annotations/480p/{seq}/{i:05d}.png\n"
                    for seq in ("blackswan", "dog") for i in range(3))
    server.state.files["/d16.zip"] = make_zip({
        "DAVIS/JPEGImages/480p/blackswan/00000.jpg": b"j",
        "DAVIS/Annotations/480p/blackswan/00000.png": b"p",
        "DAVIS/ImageSets/480p/val.txt": lines.encode(),
    })
    source = local_source(server.url("/d16.zip"), name="davis2016",
                          required=("ImageSets/480p/val.txt", "ImageSets/2016/val.txt"))
    folder = download_dataset(source, tmp_path, progress=False)
    assert (folder / "ImageSets" / "2016" / "val.txt").read_text() == "blackswan\ndog\n"


def test_gdrive_folder_dataset_looks_up_the_file_id(tmp_path):
    source = get_dataset("youtubevos2019")
    zip_bytes = make_zip({"valid/JPEGImages/v1/00000.jpg": b"j",
                          "valid/Annotations/v1/00000.png": b"p",
                          "valid/meta.json": b"{}"})
    fetch = FakeFetch(zip_bytes)
    folders = []

    def list_folder(folder_id):
        folders.append(folder_id)
        return {"valid.zip": "VALID_ID", "train.zip": "TRAIN_ID"}

    folder = download_dataset(source, tmp_path, fetch=fetch, list_folder=list_folder,
                              progress=False)
    assert folder == tmp_path / "YouTubeVOS2019"
    assert (folder / "valid" / "meta.json").read_bytes() == b"{}"
    assert folders == ["1BWzrCWyPEmBEKm0lOHe5KLuBuQxUSwqz"]
    assert [c[0] for c in fetch.calls] == ["VALID_ID"]


def test_gdrive_folder_without_the_file_says_where_to_get_it(tmp_path):
    with pytest.raises(GoogleDriveError) as info:
        download_dataset("youtubevos2019", tmp_path, fetch=FakeFetch(),
                         list_folder=lambda folder_id: {"other.zip": "X"}, progress=False)
    message = str(info.value)
    assert "drive.google.com/drive/folders/1BWzrCWyPEmBEKm0lOHe5KLuBuQxUSwqz" in message
    assert str(tmp_path / "valid.zip") in message


def test_default_folder_listing_uses_gdown(monkeypatch):
    import gdown
    from gdown.download import GoogleDriveFileToDownload

    def fake_download_folder(**kwargs):
        assert kwargs["skip_download"] is True and kwargs["id"] == "FOLDER"
        return [GoogleDriveFileToDownload(id="A", path="valid.zip", local_path="x/valid.zip"),
                GoogleDriveFileToDownload(id="B", path="sub/train.zip", local_path="x/sub")]

    monkeypatch.setattr(gdown, "download_folder", fake_download_folder)
    assert dl._gdown_list_folder("FOLDER") == {"valid.zip": "A", "train.zip": "B"}

    def broken(**kwargs):
        raise RuntimeError("Cannot retrieve the folder information from the link")

    monkeypatch.setattr(gdown, "download_folder", broken)
    with pytest.raises(GoogleDriveError, match="Could not list"):
        dl._gdown_list_folder("FOLDER")


def test_dataset_registry_is_well_formed():
    names = [s.name for s in DATASETS]
    assert len(set(names)) == len(names)
    assert {"davis2017", "davis2016", "youtubevos2019"} <= set(names)
    for source in DATASETS:
        parts = [a.part for a in source.archives]
        assert len(set(parts)) == len(parts)
        assert set(source.default_parts) <= set(parts)
        for archive in source.archives:
            assert (archive.url is None) != (archive.gdrive_folder is None)
            assert archive.url is None or archive.url.startswith("https://")
            assert archive.filename.endswith(".zip") and archive.required
    assert get_dataset("davis2017").archive("trainval").url == (
        "https://data.vision.ee.ethz.ch/csergi/share/davis/DAVIS-2017-trainval-480p.zip")
    with pytest.raises(ValueError, match="davis2017"):
        get_dataset("davis2018")
    with pytest.raises(ValueError, match="trainval"):
        get_dataset("davis2017").archive("val")
    assert "youtubevos2019" in describe_datasets()


# --- issue 21: the checksum sidecar records only an archive that unpacked ---------------------

def _one_instruction(message: str) -> None:
    """One consistent message for a corrupt archive: said once what to do, never 'Delete'."""
    assert message.count("What to do:") == 1 and "Delete" not in message
    assert "run the same command again to download a fresh copy" in message


def test_a_bad_archive_placed_by_hand_is_not_recorded_and_a_good_one_then_works(server,
                                                                             tmp_path):
    """The reported sequence: a malicious zip was recorded in davis.zip.sha256 before it was
    found unsafe; after it was removed as told, the good copy put by hand was called corrupt."""
    source = local_source(server.url("/davis.zip"))  # the server does not have it: offline
    archive, sidecar = tmp_path / "davis.zip", tmp_path / "davis.zip.sha256"
    evil = make_zip({**DAVIS_LIKE, "DAVIS/../../evil.txt": b"evil"})
    archive.write_bytes(evil)
    with pytest.raises(UnsafeArchiveError) as info:
        download_dataset(source, tmp_path, progress=False)
    message = str(info.value)
    assert message.startswith(f"Refusing to extract {archive}: member ")
    assert f"The archive was moved to {tmp_path / 'davis.zip.corrupt'} (kept;" in message
    assert f"download it by hand from {server.url('/davis.zip')}, save it as {archive}" in message
    _one_instruction(message)
    assert (tmp_path / "davis.zip.corrupt").read_bytes() == evil  # kept, not deleted
    assert not sidecar.exists() and not list(tmp_path.glob("*.sha256"))  # nothing recorded
    assert not (tmp_path / "DAVIS2017").exists() and not list(tmp_path.rglob("evil.txt"))

    good = make_zip(DAVIS_LIKE)
    archive.write_bytes(good)  # the offline way: a good copy put at the path by hand
    folder = download_dataset(source, tmp_path, progress=False)
    assert (folder / "ImageSets" / "2017" / "val.txt").read_text() == "bear\n"
    assert archive.read_bytes() == good and not (tmp_path / "davis.zip.corrupt.1").exists()
    assert read_sidecar(archive) == hashlib.sha256(good).hexdigest()  # recorded after unpacking
    assert server.state.requests == []  # never needed the network


def test_a_zip_that_unpacks_to_the_wrong_layout_is_not_recorded(server, tmp_path):
    server.state.files["/davis.zip"] = make_zip({"Other/readme.txt": b"?"})
    with pytest.raises(DownloadError, match="layout"):
        download_dataset(local_source(server.url("/davis.zip")), tmp_path, progress=False)
    assert (tmp_path / "davis.zip").is_file() and read_sidecar(tmp_path / "davis.zip") is None


def test_a_published_checksum_wins_over_a_stale_sidecar(server, tmp_path):
    from dataclasses import replace

    good = make_zip(DAVIS_LIKE)
    base = local_source(server.url("/davis.zip"))
    source = replace(base, archives=(replace(base.archives[0],
                                             sha256=hashlib.sha256(good).hexdigest()),))
    archive = tmp_path / "davis.zip"
    archive.write_bytes(good)
    (tmp_path / "davis.zip.sha256").write_text(f"{'0' * 64}  davis.zip\n")  # another copy's
    download_dataset(source, tmp_path, progress=False)
    assert archive.read_bytes() == good and not (tmp_path / "davis.zip.corrupt").exists()
    assert read_sidecar(archive) == hashlib.sha256(good).hexdigest()  # the stale one replaced
    assert server.state.requests == []
    # without a published checksum the sidecar is all there is, and a mismatch still counts
    assert verify_sidecar_refuses(tmp_path / "other.bin")


def verify_sidecar_refuses(path: Path) -> bool:
    path.write_bytes(PAYLOAD)
    dl.write_sidecar(path, "0" * 64)
    with pytest.raises(dl.VerificationError, match="changed since it was first verified"):
        dl.verify_file(path)
    return dl.verify_file(path, sha256=SHA) == SHA  # with the published value it passes


def test_damaged_archive_message_says_one_thing(server, tmp_path):
    server.state.files["/davis.zip"] = b"PK\x03\x04 definitely not a whole zip"
    with pytest.raises(DownloadError) as info:
        download_dataset(local_source(server.url("/davis.zip")), tmp_path, progress=False)
    message = str(info.value)
    assert "is not a complete zip archive" in message
    _one_instruction(message)
    assert not list(tmp_path.glob("*.sha256"))


def test_removing_the_archive_removes_its_record(server, tmp_path):
    server.state.files["/davis.zip"] = make_zip(DAVIS_LIKE)
    download_dataset(local_source(server.url("/davis.zip")), tmp_path, keep_archive=False,
                     progress=False)
    assert not (tmp_path / "davis.zip").exists() and not (tmp_path / "davis.zip.sha256").exists()


# --- issue 21: fail fast offline, retry only what may heal -----------------------------------

DAVIS_URL = "https://data.vision.ee.ethz.ch/csergi/share/davis/DAVIS-2017-trainval-480p.zip"


@pytest.fixture
def no_dns(monkeypatch):
    """The machine is offline: every name lookup fails as it does without a network."""
    lookups = []

    def getaddrinfo(host, *args, **kwargs):
        lookups.append(host)
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy",
                 "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    return lookups


def test_offline_dataset_download_fails_at_once_in_one_line(no_dns, clock, tmp_path):
    """The report: `aot-edu download dataset davis2017` without a network retried for more
    than a minute on a DNS error. Now: one attempt, no wait, one line with the way by hand."""
    (tmp_path / "DAVIS2016").mkdir()
    (tmp_path / "DAVIS2016" / "kept.txt").write_text("mine")  # something already there
    archive = tmp_path / "DAVIS-2017-trainval-480p.zip"
    with pytest.raises(DownloadError) as info:
        download_dataset("davis2017", tmp_path, progress=False)
    assert str(info.value) == (
        f"Cannot download {DAVIS_URL}: data.vision.ee.ethz.ch cannot be reached (the DNS "
        "lookup failed; no network connection?). Nothing was received. What to do: connect to "
        "the internet and run the same command again, or download it by hand from "
        f"{DAVIS_URL} and save it as {archive}, then run the same command again."
    )
    assert no_dns == ["data.vision.ee.ethz.ch"]  # one attempt
    assert clock.sleeps == [] and clock.now == 0.0  # no backoff at all
    assert sorted(p.name for p in tmp_path.iterdir()) == ["DAVIS2016"]  # nothing made or lost
    assert (tmp_path / "DAVIS2016" / "kept.txt").read_text() == "mine"


def test_offline_keeps_a_partial_transfer_and_says_so(no_dns, clock, tmp_path):
    dest = tmp_path / "file.bin"
    partial = tmp_path / "file.bin.partial"
    partial.write_bytes(PAYLOAD[:4096])
    with pytest.raises(DownloadError) as info:
        download_url("https://example.org/file.bin", dest, progress=False)
    message = str(info.value)
    assert "\n" not in message and clock.sleeps == []
    assert (f"example.org cannot be reached (the DNS lookup failed; no network connection?). "
            f"The 4,096 bytes received so far are kept in {partial}; running the same command "
            "again resumes from there. What to do:") in message
    assert f"save it as {dest}, then run the same command again." in message
    assert partial.read_bytes() == PAYLOAD[:4096]


def test_connection_refused_is_not_retried(clock, tmp_path):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/file.bin"
    with pytest.raises(DownloadError) as info:
        download_url(url, tmp_path / "file.bin", progress=False, retries=5)
    assert str(info.value).startswith(
        f"Cannot download {url}: 127.0.0.1 cannot be reached (the connection was refused; no "
        "network connection?). Nothing was received.")
    assert clock.sleeps == []


class FailingUrlopen:
    """``urllib.request.urlopen`` failing with ``errors`` in turn (the last one repeats)."""

    def __init__(self, *errors: BaseException):
        self.errors, self.calls = list(errors), 0

    def __call__(self, request, timeout=None):
        self.calls += 1
        raise self.errors[min(self.calls, len(self.errors)) - 1]


def test_timeouts_are_retried_with_capped_backoff(monkeypatch, clock, tmp_path):
    urlopen = FailingUrlopen(urllib.error.URLError(TimeoutError("timed out")))
    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    dest = tmp_path / "file.bin"
    with pytest.raises(DownloadError) as info:
        download_url("https://example.org/file.bin", dest, progress=False)  # defaults
    assert clock.sleeps == [2.0, 4.0, 8.0, 16.0, 30.0]  # doubling, capped at MAX_BACKOFF
    assert urlopen.calls == 6
    assert str(info.value) == (
        "Could not download https://example.org/file.bin after 6 attempts (last error: timed "
        "out).\nNothing was received.\nWhat to do: run the same command again later, or "
        f"download it by hand from https://example.org/file.bin and save it as {dest}, then "
        "run the same command again."
    )


def test_retries_stop_at_the_time_budget(monkeypatch, clock, tmp_path):
    urlopen = FailingUrlopen(ConnectionResetError(104, "Connection reset by peer"))
    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    with pytest.raises(DownloadError, match="after 10 attempts"):
        download_url("https://example.org/f", tmp_path / "f", progress=False, retries=100)
    assert max(clock.sleeps) == dl.MAX_BACKOFF
    assert sum(clock.sleeps) <= dl.RETRY_BUDGET == 180.0
    assert urlopen.calls == len(clock.sleeps) + 1 == 10


def test_a_transient_failure_then_no_network_stops_at_once(monkeypatch, clock, tmp_path):
    urlopen = FailingUrlopen(urllib.error.HTTPError("u", 503, "Service Unavailable", {}, None),
                             urllib.error.URLError(socket.gaierror(-3, "Temporary failure "
                                                                       "in name resolution")))
    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    with pytest.raises(DownloadError, match="the DNS lookup failed"):
        download_url("https://example.org/f", tmp_path / "f", progress=False)
    assert urlopen.calls == 2 and clock.sleeps == [2.0]


def _requests_error(monkeypatch, exception_name: str):
    """A real requests exception (as gdown raises it) for ``https://drive.google.com``."""
    import requests

    if exception_name == "dns":
        monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: (_ for _ in ()).throw(
            socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")))
        with pytest.raises(requests.exceptions.ConnectionError) as info:
            requests.get("https://drive.google.com/uc?id=X", timeout=5, proxies={})
        return info.value
    return getattr(requests.exceptions, exception_name)("boom")


def _quota_error() -> Exception:
    import gdown.exceptions

    return gdown.exceptions.FileURLRetrievalError(
        "Too many users have viewed or downloaded this file recently")


@pytest.mark.parametrize("make, kind", [
    (lambda: socket.gaierror(socket.EAI_NONAME, "Name or service not known"), "OFFLINE"),
    (lambda: urllib.error.URLError(socket.gaierror(-3, "Temporary failure in name resolution")),
     "OFFLINE"),
    (lambda: ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"), "OFFLINE"),
    (lambda: OSError(errno.ENETUNREACH, "Network is unreachable"), "OFFLINE"),
    (lambda: ConnectionError("Failed to resolve 'drive.google.com'"), "OFFLINE"),
    (lambda: TimeoutError("timed out"), "TRANSIENT"),
    (lambda: ConnectionResetError(errno.ECONNRESET, "Connection reset by peer"), "TRANSIENT"),
    (lambda: http.client.IncompleteRead(b"x", 10), "TRANSIENT"),
    (lambda: urllib.error.HTTPError("u", 502, "Bad Gateway", {}, None), "TRANSIENT"),
    (lambda: urllib.error.HTTPError("u", 404, "Not Found", {}, None), "PERMANENT"),
    (lambda: OSError(errno.ENOSPC, "No space left on device"), "PERMANENT"),
    (lambda: urllib.error.URLError(ssl.SSLCertVerificationError("certificate verify failed")),
     "PERMANENT"),
    (_quota_error, "PERMANENT"),
])
def test_errors_are_classified(make, kind):
    assert dl.classify_error(make()) is dl.ErrorKind[kind]


@pytest.mark.parametrize("name, kind", [("dns", "OFFLINE"), ("ReadTimeout", "TRANSIENT"),
                                        ("ConnectTimeout", "TRANSIENT"),
                                        ("ChunkedEncodingError", "TRANSIENT"),
                                        ("InvalidURL", "PERMANENT")])
def test_requests_errors_from_gdown_are_classified(monkeypatch, name, kind):
    assert dl.classify_error(_requests_error(monkeypatch, name)) is dl.ErrorKind[kind]


def test_offline_checkpoint_download_through_gdown_fails_at_once(no_dns, clock, tmp_path):
    dest = tmp_path / "AOTT_PRE_YTB_DAV.pth"
    with pytest.raises(GoogleDriveError) as info:
        download_gdrive("1owPmwV4owd", dest, progress=False)  # the real gdown, no network
    assert str(info.value) == (
        f"Cannot download {dest.name} from Google Drive: drive.google.com cannot be reached "
        "(the DNS lookup failed; no network connection?). No bytes of it were received, so the "
        "next run starts from the beginning. What to do: connect to the internet and run the "
        "same command again, or download it by hand: open "
        "https://drive.google.com/uc?id=1owPmwV4owd in a browser (signed in to Google if it "
        f"asks), save the file as {dest}, then run the same command again."
    )
    assert no_dns and set(no_dns) == {"drive.google.com"}
    assert clock.sleeps == []
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_offline_youtubevos_listing_fails_at_once(no_dns, clock, tmp_path):
    with pytest.raises(GoogleDriveError) as info:
        download_dataset("youtubevos2019", tmp_path, progress=False)  # real gdown listing
    folder = "https://drive.google.com/drive/folders/1BWzrCWyPEmBEKm0lOHe5KLuBuQxUSwqz"
    message = str(info.value)
    assert "\n" not in message and clock.sleeps == []
    assert message.startswith("Cannot download valid.zip from Google Drive: drive.google.com "
                              "cannot be reached (the DNS lookup failed; no network")
    assert message.endswith(
        f"or download it by hand: open {folder} in a browser (signed in to Google if it asks), "
        f"find valid.zip there, save the file as {tmp_path / 'valid.zip'}, then run the same "
        "command again.")


class FlakyFetch(FakeFetch):
    """A Drive transfer that fails with ``errors`` first, then delivers."""

    def __init__(self, *errors: Exception):
        super().__init__()
        self.errors = list(errors)

    def __call__(self, file_id, output, quiet):
        self.calls.append((file_id, Path(output), quiet))
        if self.errors:
            raise self.errors.pop(0)
        Path(output).write_bytes(self.payload)
        return str(output)


def test_gdrive_transient_errors_are_retried_then_succeed(clock, tmp_path, capsys):
    import requests

    fetch = FlakyFetch(requests.exceptions.ReadTimeout("Read timed out."),
                       ConnectionResetError(104, "Connection reset by peer"))
    dest = tmp_path / "ckpt.pth"
    assert download_gdrive("ID", dest, sha256=SHA, fetch=fetch, progress=False) == dest
    assert dest.read_bytes() == PAYLOAD and len(fetch.calls) == 3
    assert clock.sleeps == [2.0, 4.0]
    assert ("The download of ckpt.pth was interrupted (Read timed out.); retrying in 2 s "
            "(attempt 2 of 4).") in capsys.readouterr().err


def test_gdrive_gives_up_after_its_retries(clock, tmp_path):
    fetch = FakeFetch(error=ConnectionResetError(104, "Connection reset by peer"))
    with pytest.raises(GoogleDriveError) as info:
        download_gdrive("ID", tmp_path / "x.pth", fetch=fetch, progress=False, retries=2)
    assert str(info.value).startswith(
        "Downloading x.pth from Google Drive failed: [Errno 104] Connection reset by peer.\n"
        "All 3 attempts failed. No bytes of it were received")
    assert len(fetch.calls) == 3 and clock.sleeps == [2.0, 4.0]


def test_gdrive_quota_and_dns_errors_are_not_retried(clock, tmp_path):
    import gdown.exceptions

    quota = FakeFetch(error=gdown.exceptions.FileURLRetrievalError(
        "Too many users have viewed or downloaded this file recently."))
    with pytest.raises(GoogleDriveError, match="quota"):
        download_gdrive("ID", tmp_path / "a.pth", fetch=quota, progress=False)
    offline = FakeFetch(error=ConnectionError("Failed to resolve 'drive.google.com'"))
    with pytest.raises(GoogleDriveError, match="cannot be reached"):
        download_gdrive("ID", tmp_path / "b.pth", fetch=offline, progress=False)
    assert len(quota.calls) == len(offline.calls) == 1 and clock.sleeps == []


# --- issue 21: zip bombs ------------------------------------------------------------------------

def bomb_source(url: str, contents_bytes: int, contents_members: int) -> DatasetSource:
    """:func:`local_source` for an archive known to hold ``contents_bytes`` in
    ``contents_members`` files and folders."""
    from dataclasses import replace

    base = local_source(url)
    return replace(base, archives=(replace(base.archives[0], contents_bytes=contents_bytes,
                                           contents_members=contents_members),))


def deflated_zip(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return buffer.getvalue()


@pytest.fixture
def extracted_before(tmp_path) -> dict[Path, bytes]:
    """Files already in the dataset folder (an earlier extraction): none may be lost."""
    files = {tmp_path / "DAVIS2017" / "JPEGImages" / "480p" / "bear" / "00000.jpg": b"old jpg",
             tmp_path / "DAVIS2017" / "notes.txt": b"mine"}
    for path, data in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return files


def test_zip_bomb_is_refused_from_its_headers_and_left_in_place(server, tmp_path, monkeypatch,
                                                                 extracted_before):
    monkeypatch.delenv("AOT_EDU_UNPACK_LIMIT_SCALE", raising=False)
    bomb = deflated_zip({**DAVIS_LIKE, "DAVIS/JPEGImages/480p/bear/00000.jpg": b"new",
                         "DAVIS/JPEGImages/480p/bear/00001.jpg": bytes(10_000_000)})
    assert len(bomb) < 20_000  # 10 MB of zeros deflate to almost nothing
    server.state.files["/davis.zip"] = bomb
    source = bomb_source(server.url("/davis.zip"), contents_bytes=2_000_000,
                         contents_members=10)
    archive = tmp_path / "davis.zip"
    with pytest.raises(dl.ArchiveTooLargeError) as info:
        download_dataset(source, tmp_path, progress=False)
    assert str(info.value) == (
        f"Refusing to extract {archive}: by its headers it would unpack to 10.0 MB, more than "
        "the 3.0 MB allowed (1.5 times what davis2017 trainval is known to hold, 2.0 MB in 10 "
        "files and folders), as a zip bomb would. Nothing was extracted and the archive was "
        "left where it is. What to do: if you trust this file, set "
        "AOT_EDU_UNPACK_LIMIT_SCALE=3.4 and run the same command again; if not, delete it and "
        "run the same command again to download a fresh copy."
    )
    assert archive.read_bytes() == bomb  # not moved, not deleted
    assert not (tmp_path / "davis.zip.corrupt").exists() and read_sidecar(archive) is None
    for path, data in extracted_before.items():  # nothing already extracted was touched
        assert path.read_bytes() == data
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")
                  if p.is_file()) == ["DAVIS2017/JPEGImages/480p/bear/00000.jpg",
                                      "DAVIS2017/notes.txt", "davis.zip"]

    # The override named in the message lets a trusted file through, without a new download.
    monkeypatch.setenv("AOT_EDU_UNPACK_LIMIT_SCALE", "3.4")
    folder = download_dataset(source, tmp_path, progress=False)
    assert (folder / "JPEGImages" / "480p" / "bear" / "00001.jpg").stat().st_size == 10_000_000
    assert read_sidecar(archive) == hashlib.sha256(bomb).hexdigest()
    assert len(server.state.requests) == 1


def test_too_many_members_are_refused(tmp_path, monkeypatch):
    monkeypatch.delenv("AOT_EDU_UNPACK_LIMIT_SCALE", raising=False)
    archive = tmp_path / "many.zip"
    archive.write_bytes(make_zip({f"f{i}.txt": b"" for i in range(20)}))
    limits = dl.unpack_limits(100, 10, name="many")
    with pytest.raises(dl.ArchiveTooLargeError) as info:
        extract_archive(archive, tmp_path / "out", limits=limits, progress=False)
    assert str(info.value).startswith(
        f"Refusing to extract {archive}: by its headers it holds 20 files and folders, more "
        "than the 15 allowed (1.5 times what many is known to hold, 100 bytes in 10 files and "
        "folders)")
    assert "AOT_EDU_UNPACK_LIMIT_SCALE=1.4 and run the same command again" in str(info.value)
    assert not (tmp_path / "out").exists()


def test_unpack_limits_defaults_and_scale(monkeypatch):
    monkeypatch.delenv("AOT_EDU_UNPACK_LIMIT_SCALE", raising=False)
    small = dl.unpack_limits(archive_size=1000)  # contents not known: the default
    assert (small.max_bytes, small.max_members) == (10**9, 1_000_000)
    assert dl.unpack_limits(archive_size=10**8).max_bytes == 10**10  # 100 times its size
    monkeypatch.setenv("AOT_EDU_UNPACK_LIMIT_SCALE", "2")
    scaled = dl.unpack_limits(1000, 10, name="x")
    assert (scaled.max_bytes, scaled.max_members) == (3000, 30)
    assert scaled.basis.endswith(", times 2 from AOT_EDU_UNPACK_LIMIT_SCALE")
    for bad in ("zero", "0", "-1", "nan", "inf"):
        monkeypatch.setenv("AOT_EDU_UNPACK_LIMIT_SCALE", bad)
        with pytest.raises(ValueError, match=f"AOT_EDU_UNPACK_LIMIT_SCALE='{bad}' is not a "
                                             "positive number"):
            dl.unpack_limits(archive_size=1)


def test_every_dataset_archive_has_known_contents(monkeypatch):
    monkeypatch.delenv("AOT_EDU_UNPACK_LIMIT_SCALE", raising=False)
    for source in DATASETS:
        for archive in source.archives:
            assert archive.contents_bytes and archive.contents_members, archive.filename
    davis = get_dataset("davis2017").archive("trainval")
    assert dl.unpack_limits(davis.contents_bytes, davis.contents_members).max_bytes == int(
        1.5 * davis.contents_bytes)


def _understate(data: bytes, name: str, declared: int) -> bytes:
    """``data`` (a zip) with member ``name``'s uncompressed size set to ``declared`` in both
    of its headers: a forged archive whose headers lie."""
    import struct

    out = bytearray(data)
    raw = name.encode()
    for signature, size_at, name_len_at, name_at in ((b"PK\x03\x04", 22, 26, 30),
                                                    (b"PK\x01\x02", 24, 28, 46)):
        start = 0
        while (start := out.find(signature, start)) >= 0:
            length = struct.unpack_from("<H", out, start + name_len_at)[0]
            if bytes(out[start + name_at:start + name_at + length]) == raw:
                struct.pack_into("<I", out, start + size_at, declared)
            start += 4
    return bytes(out)


def test_a_member_larger_than_its_header_is_refused_and_cleaned_up(server, tmp_path,
                                                                    extracted_before):
    forged = _understate(deflated_zip({**DAVIS_LIKE,
                                       "DAVIS/JPEGImages/480p/bear/00000.jpg": b"new",
                                       "DAVIS/z_big.bin": bytes(5_000_000)}),
                         "DAVIS/z_big.bin", 100)
    server.state.files["/davis.zip"] = forged
    with pytest.raises(DownloadError) as info:  # headers within the default limits
        download_dataset(local_source(server.url("/davis.zip")), tmp_path, progress=False)
    message = str(info.value)
    assert message.startswith(f"{tmp_path / 'davis.zip'} is damaged: member 'DAVIS/z_big.bin' "
                              "could not be read")  # zipfile stops at the declared size
    _one_instruction(message)
    assert (tmp_path / "davis.zip.corrupt").read_bytes() == forged  # kept aside, as damaged
    for path, data in extracted_before.items():  # the members before it never reached here
        assert path.read_bytes() == data
    folder = tmp_path / "DAVIS2017"
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")) == [
        "JPEGImages", "JPEGImages/480p", "JPEGImages/480p/bear",
        "JPEGImages/480p/bear/00000.jpg", "notes.txt"]  # no staging folder, no partial file


def test_extraction_never_writes_more_than_a_header_declares(tmp_path, monkeypatch):
    """Our own limit while copying, whatever the zip reader does (CPython's stops at the
    declared size; the check must not depend on it)."""
    archive = tmp_path / "a.zip"
    archive.write_bytes(make_zip({"a.txt": b"a" * 10, "b.txt": b"b" * 10}))
    real_open = zipfile.ZipFile.open

    def lying_open(self, info, *args, **kwargs):
        name = info if isinstance(info, str) else info.filename
        if name == "b.txt":
            return io.BytesIO(b"b" * 3_000_000)  # far more than the 10 bytes declared
        return real_open(self, info, *args, **kwargs)

    monkeypatch.setattr(zipfile.ZipFile, "open", lying_open)
    dest = tmp_path / "deep" / "out"
    with pytest.raises(UnsafeArchiveError) as info:
        extract_archive(archive, dest, progress=False)
    assert str(info.value).startswith(
        f"Refusing to extract {archive}: member 'b.txt' holds more than the 10 bytes its "
        "header declares (a forged or damaged archive). What had been extracted was removed.")
    assert not (tmp_path / "deep").exists()  # a.txt, the staging folder and the folders: gone


def test_special_files_are_refused(tmp_path):
    archive = tmp_path / "fifo.zip"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("fine.txt", b"fine")
        info = zipfile.ZipInfo("pipe")
        info.external_attr = 0o010644 << 16  # a FIFO
        zf.writestr(info, b"")
    archive.write_bytes(buffer.getvalue())
    with pytest.raises(UnsafeArchiveError, match="member 'pipe' is a special file"):
        extract_archive(archive, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


def test_an_interrupted_extraction_leaves_the_folder_as_it_was(tmp_path, monkeypatch):
    archive = tmp_path / "a.zip"
    archive.write_bytes(make_zip({"x/1.txt": b"new 1", "x/2.txt": b"new 2"}))
    dest = tmp_path / "out"
    (dest / "x").mkdir(parents=True)
    (dest / "x" / "1.txt").write_bytes(b"old 1")
    real = dl._unpack_member
    calls = []

    def interrupted(zf, info, path, arch):
        calls.append(info.filename)
        if len(calls) == 2:
            raise KeyboardInterrupt
        real(zf, info, path, arch)

    monkeypatch.setattr(dl, "_unpack_member", interrupted)
    with pytest.raises(KeyboardInterrupt):
        extract_archive(archive, dest, progress=False)
    assert sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*")) == ["x", "x/1.txt"]
    assert (dest / "x" / "1.txt").read_bytes() == b"old 1"  # not half-replaced
    monkeypatch.setattr(dl, "_unpack_member", real)
    extract_archive(archive, dest, progress=False)  # the rerun does it all
    assert (dest / "x" / "2.txt").read_bytes() == b"new 2"
    assert (dest / "x" / "1.txt").read_bytes() == b"new 1"
