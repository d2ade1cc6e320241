"""The one download helper of aot-edu: resumable HTTP, Google Drive, verification, safe unzip.

Everything aot-edu fetches from the internet (official checkpoints, DAVIS, YouTube-VOS) goes
through :func:`download_url` or :func:`download_gdrive`. Both follow the same rules:

- bytes arrive in a staging file next to the destination and are renamed onto it only once
  they are complete and verified, so a file at the destination path is always whole;
- an interrupted transfer resumes where it stopped (HTTP ``Range``; gdown's ``resume``);
- verification checks whatever is known: the size, an MD5/SHA-256 published by the data's
  owners, and a structural check supplied by the caller (for checkpoints: the file loads with
  ``weights_only=True`` and has the variant's keys);
- where no official hash is known (the case for every AOT checkpoint), the SHA-256 of the first
  verified copy is recorded in a sidecar ``<file>.sha256``; later runs compare against it, so
  corruption after the first download is still detected (trust on first use);
- a file that fails verification is never deleted: it is renamed ``<file>.corrupt`` and the
  error says how to get a good copy (run again, or download by hand and put it at the path).
  Only staging files resume; a bad file at the destination itself is not resumed from (which
  of its bytes are bad is unknown), so its fresh download starts from the first byte;
- only failures that may heal (timeouts, dropped connections, HTTP 5xx) are retried, with
  capped backoff and a time budget; without a network (DNS, unreachable, refused) a download
  fails at once, in one line saying how to get the file by hand and where to put it;
- an archive unpacks only if its headers stay within limits derived from what it is known to
  hold (zip bombs; ``AOT_EDU_UNPACK_LIMIT_SCALE`` scales them), into a staging folder, so a
  refused or broken archive leaves the data folder as it was.

This module is the mechanism only; what is fetched is registered above it: the official
checkpoints in :mod:`aot_edu.model.zoo`, the datasets in :mod:`aot_edu.data.sources` (the one
dataset registry), which also reads them.
"""

from __future__ import annotations

import enum
import errno
import hashlib
import http.client
import json
import math
import os
import re
import shutil
import socket
import stat
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from tqdm.auto import tqdm

from .repository import repository_url

__all__ = [
    "UNPACK_LIMIT_SCALE_ENV",
    "ArchiveTooLargeError",
    "DownloadError",
    "ErrorKind",
    "GoogleDriveError",
    "UnpackLimits",
    "UnsafeArchiveError",
    "VerificationError",
    "classify_error",
    "download_gdrive",
    "download_url",
    "extract_archive",
    "hash_file",
    "read_sidecar",
    "unpack_limits",
    "verify_file",
    "write_sidecar",
]

CHUNK_SIZE = 1 << 20
USER_AGENT = f"aot-edu (+{repository_url()})"
# HTTP statuses worth retrying: the server is busy or briefly broken, the URL is fine.
TRANSIENT_HTTP = frozenset({408, 425, 429, 500, 502, 503, 504})
GDRIVE_MANUAL_URL = "https://drive.google.com/uc?id={id}"


class DownloadError(RuntimeError):
    """A download could not be completed; the message says what to do next."""


class VerificationError(DownloadError):
    """A file's size, checksum or structure is not what it should be."""


class GoogleDriveError(DownloadError):
    """Google Drive refused the download (quota exceeded, permissions) or gdown failed."""


class UnsafeArchiveError(DownloadError):
    """An archive holds a member that would land outside the extraction folder, is a link or
    a special file, or holds more bytes than its header declares."""


class ArchiveTooLargeError(DownloadError):
    """An archive's headers say it unpacks to more than it may (:func:`unpack_limits`)."""


# --- hashes and sidecars -------------------------------------------------------------------

def hash_file(path: str | Path, algorithm: str = "sha256", *, progress: bool = False) -> str:
    """Hex digest of a file, read in 1 MiB chunks (memory stays flat for multi-GB archives)."""
    path = Path(path)
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f, tqdm(
        total=path.stat().st_size, unit="B", unit_scale=True, desc=f"{algorithm} {path.name}",
        disable=not progress, leave=False,
    ) as bar:
        for block in iter(lambda: f.read(CHUNK_SIZE), b""):
            digest.update(block)
            bar.update(len(block))
    return digest.hexdigest()


def sidecar_path(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def read_sidecar(path: str | Path) -> str | None:
    """The SHA-256 recorded beside ``path`` (``<path>.sha256``, ``sha256sum`` format), if any."""
    sidecar = sidecar_path(Path(path))
    if not sidecar.is_file():
        return None
    text = sidecar.read_text(encoding="utf-8").strip()
    match = re.match(r"^([0-9a-fA-F]{64})\b", text)
    return match.group(1).lower() if match else None


def write_sidecar(path: str | Path, sha256: str) -> Path:
    """Record ``sha256`` beside ``path`` in the format ``sha256sum -c`` reads."""
    path = Path(path)
    sidecar = sidecar_path(path)
    sidecar.write_text(f"{sha256}  {path.name}\n", encoding="utf-8")
    return sidecar


def verify_file(
    path: str | Path,
    *,
    sha256: str | None = None,
    md5: str | None = None,
    size: int | None = None,
    validate: Callable[[Path], object] | None = None,
    use_sidecar: bool = True,
    progress: bool = False,
) -> str:
    """Check ``path`` against everything known about it; return its SHA-256.

    Checks, cheapest first: ``size`` (bytes), the sidecar SHA-256 recorded at the first verified
    download (when ``use_sidecar``, and only where no official hash is given: a published
    ``sha256``/``md5`` always wins over a recorded one), the official ``sha256``/``md5``, then
    ``validate(path)`` (a structural check; any exception it raises counts as a failure).
    Raises :class:`VerificationError` naming what differs. Never modifies the file.
    """
    path = Path(path)
    if not path.is_file():
        raise VerificationError(f"{path} does not exist")
    actual_size = path.stat().st_size
    if size is not None and actual_size != size:
        hint = " (the transfer was cut short)" if actual_size < size else ""
        raise VerificationError(
            f"{path} has {actual_size:,} bytes, expected {size:,}{hint}"
        )
    digest = hash_file(path, "sha256", progress=progress)
    recorded = read_sidecar(path) if use_sidecar else None
    # A checksum published by the data's owners outranks one recorded here: with one, a sidecar
    # that disagrees is stale (left by another copy) and the published value decides below.
    if recorded is not None and recorded != digest and sha256 is None and md5 is None:
        raise VerificationError(
            f"{path} changed since it was first verified: its SHA-256 is {digest}, the one "
            f"recorded in {sidecar_path(path).name} is {recorded} (the file is corrupt)"
        )
    if sha256 is not None and digest != sha256.lower():
        raise VerificationError(f"{path} has SHA-256 {digest}, expected {sha256.lower()}")
    if md5 is not None:
        actual_md5 = hash_file(path, "md5", progress=progress)
        if actual_md5 != md5.lower():
            raise VerificationError(f"{path} has MD5 {actual_md5}, expected {md5.lower()}")
    if validate is not None:
        try:
            validate(path)
        except Exception as error:  # the check's own message says what is wrong
            raise VerificationError(f"{path} failed its structural check: {error}") from error
    return digest


def quarantine(path: Path, target: Path | None = None) -> Path:
    """Rename a bad file to ``<target or path>.corrupt`` (never overwriting) and return it."""
    base = (target or path).with_name((target or path).name + ".corrupt")
    candidate, n = base, 1
    while candidate.exists():
        candidate = base.with_name(f"{base.name}.{n}")
        n += 1
    os.replace(path, candidate)
    stale = sidecar_path(path)
    if stale.exists() and target is None:
        os.replace(stale, sidecar_path(candidate))
    return candidate


def _say(message: str) -> None:
    tqdm.write(message, file=sys.stderr)


def as_sentence(text: object) -> str:
    """``text`` ending in exactly one full stop (messages quoted inside ours often end in
    one already)."""
    return str(text).rstrip().rstrip(".") + "."


def _obtain(
    dest: Path,
    fetch: Callable[[Path], None],
    staging: Path,
    *,
    sha256: str | None,
    md5: str | None,
    size: int | None,
    validate: Callable[[Path], object] | None,
    manual: str,
    progress: bool,
    record: bool = True,
) -> Path:
    """Shared skeleton of every download: reuse a good file, else fetch, verify, rename.

    ``fetch(staging)`` must leave the complete bytes at ``staging`` (resuming if it can).
    ``manual`` is the sentence telling the user how to fetch the file by hand. ``record``:
    write the sidecar SHA-256 once the file is verified (``False`` when the caller has more to
    check first, e.g. that an archive unpacks; it then calls :func:`write_sidecar` itself).
    """
    checks = dict(sha256=sha256, md5=md5, size=size, validate=validate)
    earlier = ""  # what happened to a bad file found at ``dest``, for a later error
    if dest.is_file():
        try:
            digest = verify_file(dest, **checks, progress=progress)
        except VerificationError as error:
            # A file at ``dest`` was complete once (it got there by a rename) or was put there
            # by hand: which of its bytes are bad is unknown, so it is not resumed from.
            moved = quarantine(dest)
            earlier = (f"The earlier copy at {dest} failed verification and was moved to "
                       f"{moved} (kept; delete it when you no longer need it); a fresh "
                       "download started from the first byte, as a damaged finished file "
                       "cannot be resumed.")
            _say(f"{as_sentence(error)}\n{earlier}")
        else:
            # placed by hand, by an older version, or a stale record that a published checksum
            # overruled
            if record and read_sidecar(dest) != digest:
                write_sidecar(dest, digest)
            return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        fetch(staging)
    except DownloadError as error:
        if not earlier:
            raise
        head, todo, rest = str(error).partition("\nWhat to do:")
        raise type(error)(f"{head}\n{earlier}{todo}{rest}") from error
    try:
        digest = verify_file(staging, **checks, use_sidecar=False, progress=progress)
    except VerificationError as error:
        moved = quarantine(staging, target=dest)
        raise VerificationError(
            f"The download of {dest.name} failed verification: {as_sentence(error)}\n"
            f"Nothing was deleted: the downloaded bytes are kept in {moved}.\n"
            + (f"{earlier}\n" if earlier else "")
            + f"What to do: run the same command again to download a fresh copy; if it fails "
            f"again, {manual}"
        ) from error
    os.replace(staging, dest)
    if record:
        write_sidecar(dest, digest)
    else:
        sidecar_path(dest).unlink(missing_ok=True)  # another copy's record: not this file's
    return dest


# --- network errors and retries ------------------------------------------------------------

# Retries wait backoff * 2**k seconds, never more than MAX_BACKOFF, and no new attempt starts
# once RETRY_BUDGET seconds have passed since the first failure: a flaky link gets a few
# minutes, never an unbounded wait.
MAX_BACKOFF = 30.0
RETRY_BUDGET = 180.0

# The clock of the retry loops (tests put a fake one here).
_sleep: Callable[[float], None] = time.sleep
_monotonic: Callable[[], float] = time.monotonic


class ErrorKind(enum.Enum):
    """What a failed network attempt says about the next one."""

    OFFLINE = "offline"  # no DNS, network unreachable, connection refused: will not heal soon
    TRANSIENT = "transient"  # timeout, dropped connection, a busy server (5xx): retry
    PERMANENT = "permanent"  # anything else (TLS, a refusal, a bug): report it at once


class _AttemptError(Exception):
    """One attempt of a transfer failed; ``kind`` and ``reason`` say how (see :func:`_diagnose`)."""

    def __init__(self, text: str, kind: ErrorKind = ErrorKind.TRANSIENT, reason: str = ""):
        super().__init__(text)
        self.kind, self.reason = kind, reason or text


_OFFLINE_ERRNOS = {
    errno.ENETUNREACH: "the network is unreachable",
    errno.ENETDOWN: "the network is down",
    errno.EHOSTUNREACH: "there is no route to the host",
    errno.EHOSTDOWN: "the host is down",
    errno.ECONNREFUSED: "the connection was refused",
}
# Errors of the local disk, not of the network: another attempt would meet them again.
_LOCAL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS,
                           errno.ENOENT, errno.ENOTDIR, errno.EISDIR})
# Said by libraries that wrap the OS error into text only (requests, urllib3, gdown).
_OFFLINE_PHRASES = (
    ("failed to resolve", "the DNS lookup failed"),
    ("name resolution", "the DNS lookup failed"),
    ("name or service not known", "the DNS lookup failed"),
    ("nodename nor servname", "the DNS lookup failed"),
    ("getaddrinfo failed", "the DNS lookup failed"),
    ("network is unreachable", "the network is unreachable"),
    ("no route to host", "there is no route to the host"),
    ("connection refused", "the connection was refused"),
)
_TRANSIENT_CLASSES = frozenset({  # by name: requests and urllib3 are gdown's, not imported here
    "Timeout", "ReadTimeout", "ConnectTimeout", "ReadTimeoutError", "ChunkedEncodingError",
    "ProtocolError", "IncompleteRead", "RemoteDisconnected",
})
_TRANSIENT_PHRASES = ("timed out", "timeout", "connection reset", "connection aborted",
                      "connection broken", "remote end closed", "incomplete read")


def _chain(error: BaseException) -> list[BaseException]:
    """``error`` and every error behind it (causes, contexts, ``reason``, exception args)."""
    seen: list[BaseException] = []
    todo = [error]
    while todo and len(seen) < 32:
        current = todo.pop(0)
        if any(current is s for s in seen):
            continue
        seen.append(current)
        behind = [current.__cause__, current.__context__, getattr(current, "reason", None),
                  *current.args]
        todo.extend(b for b in behind if isinstance(b, BaseException))
    return seen


def _http_status(error: BaseException) -> int | None:
    code = getattr(error, "code", None)  # urllib's HTTPError
    if not isinstance(code, int):
        code = getattr(getattr(error, "response", None), "status_code", None)  # requests
    return code if isinstance(code, int) else None


def _diagnose(error: BaseException) -> tuple[ErrorKind, str]:
    """Classify a failed attempt and say why in a few words (see :class:`ErrorKind`).

    The whole chain is read, so an OS error wrapped by urllib, urllib3, requests or gdown is
    found; no network is recognised before any timeout (urllib3's connection errors are timeout
    classes). Only foreign messages are matched as text: ours may quote anything.
    """
    chain = _chain(error)
    foreign = [e for e in chain if not isinstance(e, (DownloadError, _AttemptError))]
    texts = [" ".join(str(e).split()).lower() for e in foreign]
    for e in chain:
        if isinstance(e, _AttemptError):
            return e.kind, e.reason
    for e in chain:
        if isinstance(e, socket.gaierror) or type(e).__name__ == "NameResolutionError":
            return ErrorKind.OFFLINE, "the DNS lookup failed"
        if isinstance(e, OSError) and e.errno in _OFFLINE_ERRNOS:
            return ErrorKind.OFFLINE, _OFFLINE_ERRNOS[e.errno]
        if isinstance(e, ConnectionRefusedError):
            return ErrorKind.OFFLINE, "the connection was refused"
    for phrase, reason in _OFFLINE_PHRASES:
        if any(phrase in text for text in texts):
            return ErrorKind.OFFLINE, reason
    for e in chain:
        status = _http_status(e)
        if status is not None:
            kind = ErrorKind.TRANSIENT if status in TRANSIENT_HTTP else ErrorKind.PERMANENT
            return kind, f"HTTP {status}"
    for e in foreign:
        names = {c.__name__ for c in type(e).__mro__}
        if isinstance(e, (TimeoutError, ConnectionError, http.client.HTTPException)) or (
                names & _TRANSIENT_CLASSES):
            return ErrorKind.TRANSIENT, _brief(e)
    if any(phrase in text for text in texts for phrase in _TRANSIENT_PHRASES):
        return ErrorKind.TRANSIENT, _brief(error)
    # A bad certificate or URL (both also ValueErrors) or the local disk: will not change.
    if any(isinstance(e, OSError) and (isinstance(e, ValueError) or e.errno in _LOCAL_ERRNOS)
           for e in foreign):
        return ErrorKind.PERMANENT, _brief(error)
    for e in foreign:  # any other socket-level trouble
        if isinstance(e, OSError):
            return ErrorKind.TRANSIENT, _brief(e)
    return ErrorKind.PERMANENT, _brief(error)


def classify_error(error: BaseException) -> ErrorKind:
    """Whether a failed download attempt is worth repeating (:class:`ErrorKind`)."""
    return _diagnose(error)[0]


def _brief(error: BaseException, limit: int = 300) -> str:
    """A foreign error's message on one line, cut at ``limit`` characters."""
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _retrying(
    attempt: Callable[[], None],
    give_up: Callable[[BaseException, ErrorKind, str, int], BaseException],
    *,
    retries: int,
    backoff: float,
    what: str,
) -> None:
    """Run ``attempt`` until it succeeds, repeating it only after a transient failure.

    At most ``retries`` repeats, ``backoff * 2**k`` seconds apart (capped at
    :data:`MAX_BACKOFF`), none starting later than :data:`RETRY_BUDGET` seconds after the first
    failure. Any other failure ends at once: ``give_up(error, kind, reason, attempts)`` makes
    the exception raised (our own :class:`DownloadError` of a permanent kind is raised as is:
    it says already what to do).
    """
    first_failure: float | None = None
    for attempts in range(1, retries + 2):
        try:
            attempt()
            return
        except Exception as error:
            kind, reason = _diagnose(error)
            if kind is ErrorKind.PERMANENT and isinstance(error, DownloadError):
                raise
            now = _monotonic()
            first_failure = now if first_failure is None else first_failure
            delay = min(backoff * 2 ** (attempts - 1), MAX_BACKOFF)
            if (kind is not ErrorKind.TRANSIENT or attempts > retries
                    or now - first_failure + delay > RETRY_BUDGET):
                raise give_up(error, kind, reason, attempts) from error
            _say(f"{what} was interrupted ({reason}); retrying in {delay:.0f} s "
                 f"(attempt {attempts + 1} of {retries + 1}).")
            _sleep(delay)


def _offline_message(what: str, host: str, reason: str, kept: str, manual: str) -> str:
    """The one line said when the network is missing: what failed and the way by hand."""
    return (f"Cannot download {what}: {host} cannot be reached ({reason}; no network "
            f"connection?). {kept} What to do: connect to the internet and run the same command "
            f"again, or {manual}")


# --- HTTP ----------------------------------------------------------------------------------

_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")


def _http_fetch(
    url: str,
    partial: Path,
    *,
    expected_size: int | None,
    retries: int,
    backoff: float,
    timeout: float,
    progress: bool,
    manual: str,
) -> None:
    """Stream ``url`` into ``partial``, resuming from its current length with HTTP Range.

    Transient failures are retried (:func:`_retrying`); no network fails at once.
    """

    def kept() -> str:
        have = partial.stat().st_size if partial.exists() else 0
        return (f"The {have:,} bytes received so far are kept in {partial}; running the same "
                "command again resumes from there." if have else "Nothing was received.")

    def give_up(error: BaseException, kind: ErrorKind, reason: str, attempts: int) -> Exception:
        if kind is ErrorKind.OFFLINE:
            host = urllib.parse.urlsplit(url).hostname or url
            return DownloadError(_offline_message(url, host, reason, kept(), manual))
        tried = f" after {attempts} attempts" if attempts > 1 else ""
        return DownloadError(
            f"Could not download {url}{tried} (last error: {reason}).\n{kept()}\n"
            f"What to do: run the same command again later, or {manual}"
        )

    _retrying(
        lambda: _http_attempt(url, partial, expected_size=expected_size, timeout=timeout,
                              progress=progress),
        give_up, retries=retries, backoff=backoff,
        what=f"The download of {partial.name.removesuffix('.partial')}",
    )


def _http_attempt(
    url: str, partial: Path, *, expected_size: int | None, timeout: float, progress: bool
) -> None:
    offset = partial.stat().st_size if partial.exists() else 0
    if expected_size is not None and offset == expected_size:
        return  # a previous run received every byte but stopped before renaming
    if expected_size is not None and offset > expected_size:
        partial.unlink()  # larger than the file can be: these bytes are not ours to keep
        offset = 0
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    request = urllib.request.Request(url, headers=headers)
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as error:
        if error.code == 416 and offset:
            total = _range_total(error.headers.get("Content-Range"))
            if total is not None and total == offset:
                return  # the partial file already holds the whole resource
            partial.unlink()  # the server no longer has these bytes: start again
            raise _AttemptError(f"HTTP 416 for a resume at {offset:,} bytes") from error
        if error.code in TRANSIENT_HTTP:
            raise _AttemptError(f"HTTP {error.code} {error.reason}") from error
        raise DownloadError(
            f"The server refused {url}: HTTP {error.code} {error.reason}. Check that the URL "
            "still works in a browser; the data's owners may have moved it."
        ) from error
    except (urllib.error.URLError, TimeoutError, ConnectionError,
            http.client.HTTPException) as error:
        kind, reason = _diagnose(error)
        raise _AttemptError(reason, kind, reason) from error

    with response:
        status = response.status
        length = response.headers.get("Content-Length")
        length = int(length) if length is not None and length.isdigit() else None
        if status == 206:
            match = _CONTENT_RANGE.match(response.headers.get("Content-Range", ""))
            if match is None or int(match.group(1)) != offset:
                # A range we did not ask for: appending it would corrupt the file.
                partial.unlink(missing_ok=True)
                raise _AttemptError("the server answered with an unexpected byte range")
            total = None if match.group(3) == "*" else int(match.group(3))
            mode = "ab"
        else:  # 200: the server ignored Range (or there was none) and sends everything
            if offset:
                _say(f"The server does not support resuming; restarting {partial.name} "
                     "from the beginning.")
            offset, total, mode = 0, length, "wb"
        if expected_size is not None and total is not None and total != expected_size:
            raise DownloadError(
                f"{url} is {total:,} bytes long but {expected_size:,} were expected; the file "
                "may have changed on the server. Nothing was downloaded."
            )
        received = 0
        with open(partial, mode) as out, tqdm(
            total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024,
            desc=partial.name.removesuffix(".partial"), disable=not progress,
        ) as bar:
            try:
                for block in iter(lambda: response.read(CHUNK_SIZE), b""):
                    out.write(block)
                    received += len(block)
                    bar.update(len(block))
            except (TimeoutError, ConnectionError, http.client.HTTPException) as error:
                kind, reason = _diagnose(error)
                raise _AttemptError(f"connection lost after {offset + received:,} bytes "
                                    f"({reason})", kind, reason) from error
        if total is not None and offset + received < total:
            raise _AttemptError(f"connection closed after {offset + received:,} of "
                                f"{total:,} bytes")


def _range_total(content_range: str | None) -> int | None:
    match = re.match(r"bytes\s+\*/(\d+)", content_range or "")
    return int(match.group(1)) if match else None


def download_url(
    url: str,
    dest: str | Path,
    *,
    sha256: str | None = None,
    md5: str | None = None,
    size: int | None = None,
    validate: Callable[[Path], object] | None = None,
    progress: bool = True,
    retries: int = 5,
    backoff: float = 2.0,
    timeout: float = 60.0,
    record: bool = True,
) -> Path:
    """Download ``url`` to ``dest`` (resumable, verified); return ``dest``.

    Bytes go to ``<dest>.partial``; an interrupted download (this run after ``retries``
    attempts, or an earlier run) resumes from it with an HTTP Range request, and starts over
    cleanly when the server ignores Range. Only transient failures (timeouts, dropped
    connections, HTTP 5xx) are retried, with capped backoff (:func:`_retrying`); without a
    network (DNS, unreachable, refused) the call fails at once with the way to do it by hand. ``size``, ``sha256``, ``md5`` and ``validate`` are
    checked (see :func:`verify_file`) before the file is renamed onto ``dest``; a failure keeps
    the bytes as ``<dest>.corrupt`` and raises :class:`VerificationError`. A ``dest`` that
    already exists and passes the same checks is returned without any network access.
    ``record=False`` leaves the sidecar ``<dest>.sha256`` to the caller (see :func:`_obtain`).
    """
    dest = Path(dest)
    manual = (f"download it by hand from {url} and save it as {dest}, then run the same "
              "command again.")
    return _obtain(
        dest,
        lambda staging: _http_fetch(url, staging, expected_size=size, retries=retries,
                                    backoff=backoff, timeout=timeout, progress=progress,
                                    manual=manual),
        dest.with_name(dest.name + ".partial"),
        sha256=sha256, md5=md5, size=size, validate=validate, manual=manual, progress=progress,
        record=record,
    )


# --- Google Drive --------------------------------------------------------------------------

GDriveFetch = Callable[[str, Path, bool], object]
"""``fetch(file_id, output, quiet)``: put the Drive file ``file_id`` at ``output``."""


def _gdown_fetch(file_id: str, output: Path, quiet: bool) -> object:
    import gdown

    result = gdown.download(id=file_id, output=str(output), quiet=quiet, resume=True)
    if result is None:  # gdown < 5 reported failures by returning None
        raise GoogleDriveError("gdown could not retrieve the file")
    return result


def _gdown_progress(staging: Path) -> str:
    """What an interrupted gdown transfer to ``staging`` left for the next run to resume from.

    gdown (``resume=True``) writes to ``<staging name><8 characters>.part`` beside ``staging``
    and continues from such a file next time.
    """
    parts = [p for p in staging.parent.glob(f"{staging.name}*.part")
             if p.is_file() and p.stat().st_size] if staging.parent.is_dir() else []
    if not parts:
        return "No bytes of it were received, so the next run starts from the beginning."
    part = max(parts, key=lambda p: p.stat().st_mtime)
    return (f"The {part.stat().st_size:,} bytes received so far are kept in {part}; running the "
            "same command again resumes from there.")


# Phrases in gdown's errors that mean "Drive said no" rather than "the network broke".
_REFUSAL = ("too many users", "quota", "cannot retrieve the public link",
            "failed to retrieve file url", "permission", "access denied", "403")


def download_gdrive(
    file_id: str,
    dest: str | Path,
    *,
    sha256: str | None = None,
    md5: str | None = None,
    size: int | None = None,
    validate: Callable[[Path], object] | None = None,
    progress: bool = True,
    fetch: GDriveFetch | None = None,
    manual_url: str | None = None,
    record: bool = True,
    retries: int = 3,
    backoff: float = 2.0,
) -> Path:
    """Download the Google Drive file ``file_id`` to ``dest`` with gdown; verified like
    :func:`download_url`.

    gdown runs with ``resume=True`` on a staging name (``<dest>.download``), so a rerun after
    an interruption continues the transfer. Transient failures (timeouts, dropped connections)
    are retried as in :func:`download_url` (``retries``, ``backoff``); without a network the
    call fails at once. When Drive refuses (the daily quota: "Too many users have viewed or
    downloaded this file recently"; a permission change), the error gives the manual link
    ``https://drive.google.com/uc?id=<id>`` (or ``manual_url``, e.g. the folder holding the
    file) and the exact path to save the file at. ``fetch`` replaces gdown (tests use a fake).
    ``record`` as in :func:`download_url`.
    """
    dest = Path(dest)
    fetch = fetch or _gdown_fetch
    link = manual_url or GDRIVE_MANUAL_URL.format(id=file_id)
    where = "" if manual_url is None else f", find {dest.name} there"
    manual = (f"download it by hand: open {link} in a browser (signed in to Google if it "
              f"asks){where}, save the file as {dest}, then run the same command again.")

    def fetch_to(staging: Path) -> None:
        def attempt() -> None:
            fetch(file_id, staging, not progress)
            if not staging.is_file():
                raise GoogleDriveError(f"gdown reported success but wrote no file; {manual}")

        def give_up(error: BaseException, kind: ErrorKind, reason: str,
                    attempts: int) -> BaseException:
            if kind is ErrorKind.OFFLINE:
                return GoogleDriveError(_offline_message(
                    f"{dest.name} from Google Drive", "drive.google.com", reason,
                    _gdown_progress(staging), manual))
            # gdown's messages run long; its advice to use a browser is repeated below anyway.
            text = str(error).partition("\nWhat to do:")[0]
            text = _brief(" ".join(text.split()).split(" You may still be able")[0])
            if kind is ErrorKind.PERMANENT and any(p in text.lower() for p in _REFUSAL):
                return GoogleDriveError(
                    f"Google Drive refused to serve {dest.name} ({text.rstrip('.')}).\n"
                    "This usually means the file's daily download quota is used up "
                    "(\"Too many users have viewed or downloaded this file recently\"); it "
                    "resets within a day.\n"
                    f"What to do: wait and run the same command again, or {manual}"
                )
            tried = f"All {attempts} attempts failed. " if attempts > 1 else ""
            return GoogleDriveError(
                f"Downloading {dest.name} from Google Drive failed: {as_sentence(text)}\n"
                f"{tried}{_gdown_progress(staging)}\n"
                f"What to do: check the connection and run the same command again, or {manual}"
            )

        _retrying(attempt, give_up, retries=retries, backoff=backoff,
                  what=f"The download of {dest.name}")

    return _obtain(
        dest, fetch_to, dest.with_name(dest.name + ".download"),
        sha256=sha256, md5=md5, size=size, validate=validate, manual=manual, progress=progress,
        record=record,
    )


GDriveListFolder = Callable[[str], dict[str, str]]
"""``list_folder(folder_id) -> {file name: file id}`` for a public Google Drive folder."""


def _gdown_list_folder(folder_id: str) -> dict[str, str]:
    import gdown

    try:  # skip_download lists without fetching (gdown >= 5.1, wkentaro/gdown#317)
        entries = gdown.download_folder(id=folder_id, skip_download=True, quiet=True)
    except Exception as error:
        raise GoogleDriveError(
            f"Could not list the Google Drive folder {folder_id}: "
            f"{' '.join(str(error).split())[:300]}"
        ) from error
    listing = {}
    for entry in entries or ():
        name = PurePosixPath(str(getattr(entry, "path", ""))).name
        listing[name] = str(getattr(entry, "id", ""))
    return listing


# --- archives ------------------------------------------------------------------------------

# The advice of extract_archive's errors; download_dataset, which moves the archive aside
# itself, replaces it with its own (one message, one instruction).
_REDO = "\nWhat to do: delete the archive and download it again from the official source."


def marker_path(dest: Path, archive: Path) -> Path:
    return dest / f".{archive.name}.extracted"


def _member_target(name: str, strip_prefix: str | None) -> PurePosixPath | None:
    """The path (relative to the extraction folder) a member goes to; None to skip it.

    Raises :class:`UnsafeArchiveError` for absolute paths, drive letters and ``..``.
    """
    normalised = name.replace("\\", "/")
    if normalised.startswith("__MACOSX/"):
        return None  # resource forks added by macOS's zip; not data
    if strip_prefix and normalised.startswith(strip_prefix):
        normalised = normalised[len(strip_prefix):]
    if normalised.startswith("/") or re.match(r"^[A-Za-z]:", normalised):
        raise UnsafeArchiveError(f"member {name!r} has an absolute path")
    parts = [p for p in normalised.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UnsafeArchiveError(f"member {name!r} climbs out of the folder with '..'")
    return PurePosixPath(*parts) if parts else None


# Zip bombs: an archive may unpack to at most UNPACK_MARGIN times what it is known to hold
# (DatasetArchive.contents_bytes / contents_members), or, when that is not known, to
# DEFAULT_UNPACK_RATIO times its own size (at least DEFAULT_UNPACK_MIN_BYTES) and
# DEFAULT_UNPACK_MEMBERS files and folders. The environment variable scales every limit.
UNPACK_LIMIT_SCALE_ENV = "AOT_EDU_UNPACK_LIMIT_SCALE"
UNPACK_MARGIN = 1.5
DEFAULT_UNPACK_RATIO = 100
DEFAULT_UNPACK_MIN_BYTES = 10**9
DEFAULT_UNPACK_MEMBERS = 1_000_000


@dataclass(frozen=True)
class UnpackLimits:
    """The most an archive may unpack to: ``max_bytes`` in all and ``max_members`` files and
    folders. ``basis`` says where the numbers come from; ``scale`` is the factor of
    ``AOT_EDU_UNPACK_LIMIT_SCALE`` already applied."""

    max_bytes: int
    max_members: int
    basis: str
    scale: float = 1.0


def _size(n: float) -> str:
    for unit, factor in (("GB", 10**9), ("MB", 10**6)):
        if n >= factor:
            return f"{n / factor:.1f} {unit}"
    return f"{int(n):,} bytes"


def _limit_scale() -> float:
    text = os.environ.get(UNPACK_LIMIT_SCALE_ENV, "").strip()
    if not text:
        return 1.0
    try:
        scale = float(text)
    except ValueError:
        scale = math.nan
    if not (math.isfinite(scale) and scale > 0):
        raise ValueError(
            f"{UNPACK_LIMIT_SCALE_ENV}={text!r} is not a positive number; set it to the factor "
            "to multiply the unpacking limits of archives by (e.g. 2), or unset it"
        )
    return scale


def unpack_limits(
    contents_bytes: int | None = None,
    contents_members: int | None = None,
    *,
    archive_size: int = 0,
    name: str = "the archive",
) -> UnpackLimits:
    """The limits for an archive known to hold ``contents_bytes`` in ``contents_members``
    files and folders (:data:`UNPACK_MARGIN` times that), or the defaults for one of
    ``archive_size`` bytes whose contents are not known; times ``AOT_EDU_UNPACK_LIMIT_SCALE``.
    """
    scale = _limit_scale()
    if contents_bytes is not None and contents_members is not None:
        max_bytes, max_members = contents_bytes * UNPACK_MARGIN, contents_members * UNPACK_MARGIN
        basis = (f"{UNPACK_MARGIN:g} times what {name} is known to hold, "
                 f"{_size(contents_bytes)} in {contents_members:,} files and folders")
    else:
        max_bytes = max(DEFAULT_UNPACK_RATIO * archive_size, DEFAULT_UNPACK_MIN_BYTES)
        max_members = DEFAULT_UNPACK_MEMBERS
        basis = (f"the default for contents not known beforehand: {DEFAULT_UNPACK_RATIO} times "
                 f"the archive's size, at least {_size(DEFAULT_UNPACK_MIN_BYTES)}, and "
                 f"{DEFAULT_UNPACK_MEMBERS:,} files and folders")
    if scale != 1.0:
        basis += f", times {scale:g} from {UNPACK_LIMIT_SCALE_ENV}"
    return UnpackLimits(int(max_bytes * scale), int(max_members * scale), basis, scale)


def _check_limits(archive: Path, total: int, members: int, limits: UnpackLimits) -> None:
    """Refuse (:class:`ArchiveTooLargeError`) an archive whose headers exceed ``limits``."""
    over = []
    if total > limits.max_bytes:
        over.append(f"it would unpack to {_size(total)}, more than the "
                     f"{_size(limits.max_bytes)} allowed")
    if members > limits.max_members:
        over.append(f"it holds {members:,} files and folders, more than the "
                    f"{limits.max_members:,} allowed")
    if not over:
        return
    # the smallest factor (to a tenth) that lets it through
    need = max(total / max(limits.max_bytes / limits.scale, 1.0),
               members / max(limits.max_members / limits.scale, 1.0))
    need = math.ceil(need * 10) / 10
    raise ArchiveTooLargeError(
        f"Refusing to extract {archive}: by its headers {'; '.join(over)} ({limits.basis}), "
        "as a zip bomb would. Nothing was extracted and the archive was left where it is. "
        f"What to do: if you trust this file, set {UNPACK_LIMIT_SCALE_ENV}={need:g} and run the "
        "same command again; if not, delete it and run the same command again to download a "
        "fresh copy."
    )


def _member_kind(info: zipfile.ZipInfo) -> str | None:
    """What a member is when it is neither a file nor a folder (Unix mode bits), else None."""
    kind = stat.S_IFMT(info.external_attr >> 16)
    if kind in (0, stat.S_IFREG, stat.S_IFDIR):
        return None
    if kind == stat.S_IFLNK:
        return "a symbolic link, which could point outside the folder"
    return "a special file (a device, pipe or socket), not data"


def _merge(staging: Path, dest: Path) -> None:
    """Move everything in ``staging`` into ``dest`` (same disk: renames), replacing files.

    Every target is checked first, so a refusal moves nothing.
    """
    root = dest.resolve()
    moves = []
    for folder, _, files in os.walk(staging):
        target = dest / Path(folder).relative_to(staging)
        for name in files:
            path = target / name
            if not path.resolve().is_relative_to(root):  # a symbolic link already in dest
                raise UnsafeArchiveError(
                    f"Refusing to extract into {dest}: {path} resolves outside it (a symbolic "
                    "link in the folder). Nothing was extracted."
                )
            moves.append((Path(folder) / name, path))
    for folder, _, _ in os.walk(staging):  # folders too, empty ones included
        (dest / Path(folder).relative_to(staging)).mkdir(parents=True, exist_ok=True)
    for source, path in moves:
        os.replace(source, path)


def extract_archive(
    archive: str | Path,
    dest: str | Path,
    *,
    strip_prefix: str | None = None,
    progress: bool = True,
    limits: UnpackLimits | None = None,
) -> Path:
    """Unpack the zip ``archive`` into ``dest`` safely and once; return ``dest``.

    Every member is checked before anything is written: absolute paths, ``..``, symbolic links
    and special files are refused (:class:`UnsafeArchiveError`), so nothing can land outside
    ``dest``; the total size and number of members the headers declare must be within
    ``limits`` (default: :func:`unpack_limits` for an archive of unknown contents), else
    :class:`ArchiveTooLargeError`. While unpacking, a member that yields more bytes than its
    header declares is refused too. Members are unpacked into a staging folder inside
    ``dest`` and moved into place only once all are out, so a refused or damaged archive
    leaves ``dest`` as it was (the staging folder is removed). ``strip_prefix`` (e.g.
    ``"DAVIS/"``) drops a top folder where members have it. A marker
    ``dest/.<archive name>.extracted`` is written after the last member; when it exists the
    call returns at once (the archive may even have been deleted). An interrupted extraction
    leaves no marker and is redone from the start.
    """
    archive, dest = Path(archive), Path(dest)
    marker = marker_path(dest, archive)
    if marker.is_file():
        return dest
    if not archive.is_file():
        raise DownloadError(f"{archive} does not exist; download it first")
    try:
        zf = zipfile.ZipFile(archive)
    except zipfile.BadZipFile as error:
        raise DownloadError(
            f"{archive} is not a complete zip archive (truncated or corrupt: {error}).{_REDO}"
        ) from error
    with zf:
        plan: list[tuple[zipfile.ZipInfo, PurePosixPath]] = []
        for info in zf.infolist():
            try:
                target = _member_target(info.filename, strip_prefix)
            except UnsafeArchiveError as error:
                raise UnsafeArchiveError(
                    f"Refusing to extract {archive}: {error}. A genuine dataset archive never "
                    "does this; the file is damaged or not what it claims to be. Nothing was "
                    f"extracted.{_REDO}"
                ) from None
            if target is None:
                continue
            kind = _member_kind(info)
            if kind is not None:
                raise UnsafeArchiveError(
                    f"Refusing to extract {archive}: member {info.filename!r} is {kind}. "
                    f"Nothing was extracted.{_REDO}"
                )
            plan.append((info, target))
        total = sum(info.file_size for info, _ in plan)
        if limits is None:
            limits = unpack_limits(archive_size=archive.stat().st_size)
        _check_limits(archive, total, len(plan), limits)

        made = [d for d in (dest, *dest.parents) if not d.exists()]  # deepest first
        staging = dest / f".{archive.name}.unpacking"
        shutil.rmtree(staging, ignore_errors=True)  # left by an interrupted run
        staging.mkdir(parents=True)
        try:
            with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024,
                      desc=f"unzip {archive.name}", disable=not progress) as bar:
                for info, target in plan:
                    path = staging.joinpath(*target.parts)
                    if info.is_dir():
                        path.mkdir(parents=True, exist_ok=True)
                        continue
                    path.parent.mkdir(parents=True, exist_ok=True)
                    _unpack_member(zf, info, path, archive)
                    bar.update(info.file_size)
            _merge(staging, dest)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            for folder in made:  # a refused archive leaves no empty folders of its own behind
                if folder.is_dir() and not any(folder.iterdir()):
                    folder.rmdir()
            raise
        shutil.rmtree(staging, ignore_errors=True)
    marker.write_text(
        json.dumps({"archive": archive.name, "members": len(plan), "bytes": total}) + "\n",
        encoding="utf-8",
    )
    return dest


# What reading a damaged or unsupported member raises (zipfile, zlib, the file system).
_READ_ERRORS = (zipfile.BadZipFile, EOFError, OSError, zlib.error, NotImplementedError,
                RuntimeError)


def _unpack_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, path: Path,
                   archive: Path) -> None:
    """Copy one member to ``path``, never more bytes than its header declares.

    A read error is the archive's (damaged, encrypted, unknown compression); a write error
    (disk full, read-only) is raised as it is.
    """

    def damaged(error: BaseException) -> DownloadError:
        return DownloadError(f"{archive} is damaged: member {info.filename!r} could not be "
                             f"read ({error}).{_REDO}")

    try:
        src = zf.open(info)
    except _READ_ERRORS as error:
        raise damaged(error) from error
    written = 0
    with src, open(path, "wb") as out:
        while True:
            try:
                block = src.read(CHUNK_SIZE)
            except _READ_ERRORS as error:
                raise damaged(error) from error
            if not block:
                return
            written += len(block)
            if written > info.file_size:
                raise UnsafeArchiveError(
                    f"Refusing to extract {archive}: member {info.filename!r} holds more than "
                    f"the {info.file_size:,} bytes its header declares (a forged or damaged "
                    f"archive). What had been extracted was removed.{_REDO}"
                )
            out.write(block)
