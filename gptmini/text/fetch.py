"""Named files fetched once: downloaded into a cache folder, checked against a known sha256, kept only
when they match. Offline, one line says to pass the file instead."""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gptmini.errors import CorpusError

DOWNLOAD_TIMEOUT_S = 30


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
    tmp = folder / f".{info['filename']}.{os.getpid()}.{uuid.uuid4().hex[:8]}.part"
    try:
        actual = _download(info, tmp, url_opener or urllib.request.urlopen, name)
        if info["sha256"] is not None and actual != info["sha256"]:
            raise CorpusError(
                f"downloaded {name} from {info['url']} but its sha256 is {actual}, expected {info['sha256']}; "
                "the file was not kept"
            )
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
    return path


def _download(info: dict[str, Any], tmp: Path, opener: Callable[..., Any], name: str) -> str:
    """Stream ``info['url']`` into ``tmp``; return the sha256 of what was received."""
    url = info["url"]
    limit = 2 * info["size"] + (1 << 20)
    hasher = hashlib.sha256()
    received = 0
    try:
        with opener(url, timeout=DOWNLOAD_TIMEOUT_S) as response, open(tmp, "wb") as out:
            while chunk := response.read(1 << 16):
                received += len(chunk)
                if received > limit:
                    raise CorpusError(f"download of {name} from {url} is much larger than expected; stopped")
                hasher.update(chunk)
                out.write(chunk)
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as e:
        reason = getattr(e, "reason", None) or str(e) or type(e).__name__
        raise CorpusError(
            f"could not download {name} from {url} ({reason}); you are probably offline — "
            "download it yourself and pass it with --data PATH"
        ) from None
    return hasher.hexdigest()
