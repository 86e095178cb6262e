"""Named files fetched once: downloaded into a cache folder, checked against a known sha256, kept only
when they match. Offline, one line within a few seconds says to pass the file instead: the host is tried
first (``unreachable``, also used for the GPT-2 weights), so a dead network never waits for a download's
timeout. A stop request (``stopping``) ends a download between two chunks; nothing partial is kept."""

from __future__ import annotations

import hashlib
import http.client
import os
import socket
import threading
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gptmini import tempfiles
from gptmini.errors import CorpusError
from gptmini.stopping import check_stop

DOWNLOAD_TIMEOUT_S = 30
PROBE_TIMEOUT_S = 4.0  # how long the host of a download may take to answer at all


def unreachable(url: str, timeout: float = PROBE_TIMEOUT_S) -> str | None:
    """Why the host of ``url`` cannot be reached now, or None (it answered, or a proxy will be asked).

    Name lookup and connection run on a helper thread, so a resolver that never answers costs
    ``timeout`` seconds too, not its own retries."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme in urllib.request.getproxies() or not parts.hostname:
        return None  # the proxy decides; the download's own timeout applies
    port = parts.port or (443 if parts.scheme == "https" else 80)
    problem: list[str] = []

    def probe() -> None:
        try:
            socket.create_connection((parts.hostname, port), timeout=timeout).close()
        except OSError as exc:
            problem.append(exc.strerror or str(exc) or type(exc).__name__)

    thread = threading.Thread(target=probe, name="gptmini-probe", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        return f"{parts.hostname} did not answer within {timeout:g} s"
    return f"{parts.hostname}: {problem[0]}" if problem else None


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def fetch_file(name: str, info: dict[str, Any], folder: Path, *,
               url_opener: Callable[..., Any] | None = None) -> Path:
    """Path of the named file ``info`` describes (``url``, ``sha256``, ``size``, ``filename``) in ``folder``,
    downloading it first if needed.

    The download goes to a temporary sibling, is checked against the known sha256 (``None``: a file whose
    sha256 is not known, which the caller checks by its content)
    and only then renamed into place. ``url_opener(url, timeout=...)`` defaults to
    ``urllib.request.urlopen`` (tests inject a fake).
    """
    path = folder / info["filename"]
    try:
        if path.is_file() and (info["sha256"] is None or _sha256_file(path) == info["sha256"]):
            return path
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise CorpusError(f"cannot use the corpus cache folder {folder}: {e.strerror or e}") from None
    if url_opener is None and (why := unreachable(info["url"])) is not None:
        raise CorpusError(_offline(name, info["url"], why))
    tmp = folder / f".{info['filename']}.{os.getpid()}.{uuid.uuid4().hex[:8]}.part"
    with tempfiles.in_progress(tmp):
        actual = _download(info, tmp, url_opener or urllib.request.urlopen, name)
        if info["sha256"] is not None and actual != info["sha256"]:
            raise CorpusError(
                f"downloaded {name} from {info['url']} but its sha256 is {actual}, expected {info['sha256']}; "
                "the file was not kept"
            )
        try:
            os.replace(tmp, path)
        except OSError as e:
            raise CorpusError(f"cannot keep {name} in {folder}: {e.strerror or e}") from None
    return path


def _offline(name: str, url: str, reason: str) -> str:
    return (f"could not download {name} from {url} ({reason}); you are probably offline — "
            "download it yourself and pass it with --data PATH")


def _download(info: dict[str, Any], tmp: Path, opener: Callable[..., Any], name: str) -> str:
    """Stream ``info['url']`` into ``tmp``; return the sha256 of what was received. A failed local write
    (a full disk) names its own cause, not the network."""
    url = info["url"]
    limit = 2 * info["size"] + (1 << 20)
    hasher = hashlib.sha256()
    received = 0
    try:
        with opener(url, timeout=DOWNLOAD_TIMEOUT_S) as response, _local(open, tmp, "wb", where=(tmp, name)) as out:
            while chunk := response.read(1 << 16):
                check_stop()
                received += len(chunk)
                if received > limit:
                    raise CorpusError(f"download of {name} from {url} is much larger than expected; stopped")
                hasher.update(chunk)
                _local(out.write, chunk, where=(tmp, name))
            _local(out.flush, where=(tmp, name))
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as e:
        reason = getattr(e, "reason", None) or str(e) or type(e).__name__
        raise CorpusError(_offline(name, url, str(reason))) from None
    return hasher.hexdigest()


def _local(call: Callable[..., Any], *args: Any, where: tuple[Path, str]) -> Any:
    """``call(*args)``, a local file operation: its OSError (a full disk) becomes one line naming the cause."""
    try:
        return call(*args)
    except OSError as e:
        tmp, name = where
        raise CorpusError(f"cannot save the download of {name} in {tmp.parent}: {e.strerror or e}") from None
