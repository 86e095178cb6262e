"""The console's panels, one module each."""

from gptmini_tui.widgets.checkpoints import CheckpointsPanel
from gptmini_tui.widgets.counters import Counters
from gptmini_tui.widgets.footer import KeyFooter
from gptmini_tui.widgets.header import RunHeader
from gptmini_tui.widgets.log import EventLog
from gptmini_tui.widgets.loss_plot import LossPlot
from gptmini_tui.widgets.panels import Panels
from gptmini_tui.widgets.playground import Playground
from gptmini_tui.widgets.probs import ProbsView
from gptmini_tui.widgets.runs import RunsPanel
from gptmini_tui.widgets.samples import SamplesPanel

__all__ = ["CheckpointsPanel", "Counters", "EventLog", "KeyFooter", "LossPlot", "Panels", "Playground", "ProbsView",
           "RunHeader", "RunsPanel", "SamplesPanel"]
