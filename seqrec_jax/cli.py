"""What every `python -m seqrec_jax.<entry>` main shares: console logging and errors.

Library code reports through `absl.logging`; here the entry points route this
package's INFO records to stdout as plain lines (progress, validation, test), keep
other libraries' INFO chatter out (Orbax logs every save; TensorStore every expected
fallback), and turn user errors into one clear line (the traceback with
`SEQREC_TRACEBACK=1` or an explicit `--verbosity`).
"""

from __future__ import annotations

import logging as py_logging
import os
import sys
from collections.abc import Callable

from absl import app, flags, logging

# Errors a user causes (bad config, missing or malformed files, damaged checkpoints).
USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, FileNotFoundError, KeyError,
                                                 FloatingPointError, RuntimeError, OSError)


class _OwnInfo(py_logging.Filter):
  """Records from this package at INFO and above."""

  def filter(self, record: py_logging.LogRecord) -> bool:
    return f"{os.sep}seqrec_jax{os.sep}" in record.pathname and record.levelno < py_logging.WARNING


class _Quiet(py_logging.Filter):
  """What the absl (stderr) handler still shows: warnings and errors from anyone."""

  def filter(self, record: py_logging.LogRecord) -> bool:
    return record.levelno >= py_logging.WARNING


def setup_logging() -> None:
  """Own INFO lines to stdout, everyone's warnings to stderr (idempotent)."""
  explicit = flags.FLAGS["verbosity"].present
  if not explicit:
    logging.set_verbosity(logging.INFO)
  logger = py_logging.getLogger("absl")
  if any(isinstance(h, _StdoutHandler) for h in logger.handlers):
    return
  if not explicit:
    logging.get_absl_handler().addFilter(_Quiet())
  out = _StdoutHandler(sys.stdout)
  out.setFormatter(py_logging.Formatter("%(message)s"))
  out.addFilter(_OwnInfo())
  logger.addHandler(out)


class _StdoutHandler(py_logging.StreamHandler):
  def emit(self, record):
    super().emit(record)
    self.flush()


def show_tracebacks() -> bool:
  return bool(os.environ.get("SEQREC_TRACEBACK")) or flags.FLAGS["verbosity"].present


def guarded(main: Callable[[list[str]], None]) -> Callable[[list[str]], None]:
  """Wraps an absl main: logging set up, user errors as one line and exit status 2."""

  def wrapped(argv):
    setup_logging()
    try:
      return main(argv)
    except USER_ERRORS as e:
      if show_tracebacks():
        raise
      text = str(e.args[0]) if isinstance(e, KeyError) and e.args else str(e)
      print(f"error: {type(e).__name__}: {text}", file=sys.stderr)
      print("(full traceback: set SEQREC_TRACEBACK=1)", file=sys.stderr)
      sys.exit(2)

  return wrapped


def run(main: Callable[[list[str]], None]) -> None:
  app.run(guarded(main))
