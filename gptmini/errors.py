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
