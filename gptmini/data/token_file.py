"""The token cache's file: the ids as a flat array, then a footer that says how many there are and their
checksum, so a file cut short, grown or damaged on disk is never trained on.

    ids (n_tokens x itemsize bytes) | b"GPTMTOK2" | n_tokens (u64) | itemsize (u64) | crc32 of the ids (u64)

The footer is written last, and the file is renamed into place only then (``data.tokens``); a reader
memory-maps the ids and checks the size against the footer and the checksum against the ids
(``check_token_file``: about 1 GB/s).
"""

from __future__ import annotations

import errno
import os
import shutil
import struct
import zlib
from pathlib import Path
from typing import BinaryIO

import numpy as np

from gptmini.errors import CorpusError
from gptmini.text.corpus import human_size

MAGIC = b"GPTMTOK2"
FOOTER = struct.Struct("<8sQQQ")
CHECK_BLOCK = 16 << 20  # bytes checksummed at a time


class TokenFileWriter:
    """Appends arrays of ids to an open file, keeping their count and checksum; ``finish`` writes the footer."""

    def __init__(self, fh: BinaryIO, dtype: np.dtype) -> None:
        self.fh = fh
        self.dtype = np.dtype(dtype)
        self.n_tokens = 0
        self.crc = 0

    def write(self, ids: np.ndarray) -> None:
        data = memoryview(np.ascontiguousarray(ids, dtype=self.dtype)).cast("B")
        self.fh.write(data)  # a file object's write keeps the OS's errno (numpy's tofile loses it)
        self.crc = zlib.crc32(data, self.crc)
        self.n_tokens += ids.shape[0]

    def finish(self) -> None:
        self.fh.write(FOOTER.pack(MAGIC, self.n_tokens, self.dtype.itemsize, self.crc))
        self.fh.flush()


def check_token_file(path: Path, dtype: np.dtype) -> tuple[int | None, str | None]:
    """``(n_tokens, None)`` for a sound file; ``(None, what is wrong)`` for a damaged one; ``(None, None)``
    when there is no file."""
    itemsize = np.dtype(dtype).itemsize
    try:
        size = path.stat().st_size
        if size < FOOTER.size:
            return None, f"{size} bytes, shorter than its footer"
        with open(path, "rb") as fh:
            fh.seek(size - FOOTER.size)
            magic, n_tokens, stored_itemsize, crc = FOOTER.unpack(fh.read(FOOTER.size))
            if magic != MAGIC or stored_itemsize != itemsize:
                return None, "its footer is missing or not a token cache's"
            expected = n_tokens * itemsize + FOOTER.size
            if size != expected or n_tokens == 0:
                return None, f"{size:,} bytes where its footer says {expected:,}"
            fh.seek(0)
            actual, left = 0, size - FOOTER.size
            while left:
                block = fh.read(min(CHECK_BLOCK, left))
                if not block:
                    return None, "it ends early"
                actual = zlib.crc32(block, actual)
                left -= len(block)
    except FileNotFoundError:
        return None, None
    except OSError as exc:
        return None, f"it cannot be read: {exc.strerror or exc}"
    if actual != crc:
        return None, "its checksum does not match its content"
    return n_tokens, None


def cache_write_error(exc: OSError, folder: Path, needed: int) -> CorpusError:
    """One line for a failed write of the token cache: the cause the OS gave, and what to do about it.
    ``needed``: an upper bound of the file's size."""
    env = os.environ.get("GPTMINI_CACHE_DIR")
    elsewhere = (f"point GPTMINI_CACHE_DIR (now {env}) at another folder" if env
                 else "set GPTMINI_CACHE_DIR to another folder")
    cause = exc.strerror or str(exc) or type(exc).__name__
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        try:
            free = f", {human_size(shutil.disk_usage(folder).free)} free there"
        except OSError:
            free = ""
        return CorpusError(f"cannot write the token cache in {folder}: {cause.lower()} (the tokens need up to "
                           f"{human_size(needed)}{free}); free some space, or {elsewhere}")
    return CorpusError(f"cannot write the token cache in {folder}: {cause}; {elsewhere} that can be written")
