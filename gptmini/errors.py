"""User-facing errors: one clear message, never a traceback."""


class GPTMiniError(Exception):
    """A mistake in the user's input or environment, with a message meant for them."""


class ConfigError(GPTMiniError, ValueError):
    """An option or configuration value is invalid."""


class CorpusError(GPTMiniError):
    """The training text could not be found, read or used."""


class TokenizerError(GPTMiniError, ValueError):
    """Text cannot be encoded (e.g. a character the char vocabulary lacks)."""


class CheckpointError(GPTMiniError):
    """A checkpoint is missing, corrupt, unsafe or does not fit the model."""


class SamplingError(GPTMiniError, ValueError):
    """Invalid sampling settings or prompt."""


def error_text(exc: BaseException) -> str:
    """What to show for an exception: a user's mistake (``GPTMiniError``) reads as its message,
    anything else also names its type."""
    if isinstance(exc, GPTMiniError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def os_error_text(exc: BaseException, out: str | None = None) -> str | None:
    """One line for a file operation that failed (a full disk, no permission), with the cause the OS gave;
    None when ``exc`` is no such failure. ``out``: the file a command was writing, named when the error
    does not name it (safetensors' and numpy's errors name no file)."""
    import re

    cause: str | None = None
    where = f"cannot write {out}: " if out else ""
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.filename}: {exc.strerror}" if exc.filename else f"{where}{exc.strerror}"
    found = re.search(r"I/O error: (.+?) \(os error \d+\)", str(exc))  # safetensors' own error
    if found:
        cause = found.group(1)
    elif isinstance(exc, OSError):  # numpy's "3072 requested and 1928 written": a short write, no errno
        cause = str(exc) or type(exc).__name__
        free = _free_bytes(out)
        if free is not None and free < (1 << 20):
            cause = f"no space left on device ({cause}; {free:,} bytes free there)"
    return None if cause is None else f"{where}{cause}"


def _free_bytes(out: str | None) -> int | None:
    import shutil
    from pathlib import Path

    if not out:
        return None
    folder = Path(out).expanduser().absolute()
    while not folder.exists() and folder.parent != folder:
        folder = folder.parent
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None
