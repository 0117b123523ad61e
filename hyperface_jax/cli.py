"""What the command-line tools (predict, prepare, evaluate, export) share.

Each tool keeps its own flags in a private `flags.FlagValues` (so importing it defines no
global flag and its `main(argv)` can be called in-process, e.g. by tests); `app.run` then
parses only absl's own flags (--verbosity, --logtostderr, ...) and leaves the tool's flags
in argv for `main`.
"""

from __future__ import annotations

import sys
from typing import Callable, Optional

from absl import app, flags

HELP_ARGS = ("-h", "-help", "--help", "--helpshort", "--helpfull", "-?")


def absl_parser(help_text: Optional[Callable[[], str]] = None):
  """An `app.run` flags parser for a tool with private flags.

  Args:
    help_text: if given, `--help` (any of HELP_ARGS) prints `help_text()` and exits 0;
      otherwise the help arguments stay in argv for the tool's `main` to handle.

  Returns:
    `parse(argv) -> argv left for main`.
  """

  def parse(argv):
    help_args = [a for a in argv[1:] if a in HELP_ARGS]
    if help_args and help_text is not None:
      print(help_text())
      sys.exit(0)
    return flags.FLAGS([a for a in argv if a not in help_args], known_only=True) + help_args

  return parse


def run(main: Callable, help_text: Optional[Callable[[], str]] = None) -> None:
  """`app.run` of a tool whose `main(argv)` returns its exit status."""
  app.run(lambda argv: sys.exit(main(argv)), flags_parser=absl_parser(help_text))
