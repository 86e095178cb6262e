"""Modal screens: help, confirmation, new-run form."""

from gptmini_tui.screens.confirm import ConfirmScreen
from gptmini_tui.screens.help import HelpScreen
from gptmini_tui.screens.new_run import NewRunScreen

__all__ = ["ConfirmScreen", "HelpScreen", "NewRunScreen"]
