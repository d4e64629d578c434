"""The web console: an index of what the pipeline did (:mod:`tools.console.index`, fed by
:mod:`tools.console.feeder`), served with its HTTP API (:mod:`tools.console.api`) by
``hookbus console`` and ``hookbus dev``. docs/console.md describes it."""

from tools.console.service import run_console
from tools.console.settings import ConsoleSettings, console_settings

__all__ = ["ConsoleSettings", "console_settings", "run_console"]
