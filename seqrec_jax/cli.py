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
import signal
import sys
import threading
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
    if not os.environ.get("SEQREC_TRACEBACK"):
      logging.get_absl_handler().addFilter(_Storm())
      sys.unraisablehook = _quiet_unraisable
  out = _StdoutHandler(sys.stdout)
  out.setFormatter(py_logging.Formatter("%(message)s"))
  out.addFilter(_OwnInfo())
  logger.addHandler(out)


class _Storm(py_logging.Filter):
  """Other libraries' warnings and errors (Orbax, TensorStore on an expected checkpoint
  fallback or a failed save) as one line each, at most `limit` per source line; the
  error that stops the run is ours and says what happened."""

  def __init__(self, limit: int = 3):
    super().__init__()
    self.limit = limit
    self.seen: dict[tuple[str, int], int] = {}

  def filter(self, record: py_logging.LogRecord) -> bool:
    if f"{os.sep}seqrec_jax{os.sep}" in record.pathname:
      return True
    where = (record.pathname, record.lineno)
    n = self.seen[where] = self.seen.get(where, 0) + 1
    if n > self.limit + 1:
      return False
    try:
      text = record.getMessage()
    except Exception:  # pylint: disable=broad-except
      text = str(record.msg)
    first = text.splitlines()[0] if text else ""
    if len(first) > 300:
      first = first[:300] + "..."
    if n == self.limit + 1:
      first = f"(further messages from {os.path.basename(record.pathname)}:{record.lineno} " \
              "suppressed; set SEQREC_TRACEBACK=1 for all)"
    record.msg, record.args = first, None
    record.exc_info = record.exc_text = record.stack_info = None
    return True


_UNRAISABLE: dict[str, int] = {}


def _quiet_unraisable(unraisable) -> None:
  """Exceptions Python can only print (asyncio futures of a failed Orbax / TensorStore
  restore, garbage-collected after their event loop closed: "Event loop is closed"),
  one line per kind instead of a traceback each."""
  exc = unraisable.exc_value
  key = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:200]
  n = _UNRAISABLE[key] = _UNRAISABLE.get(key, 0) + 1
  if n == 1:
    print(f"(ignored in a library's cleanup: {key}; set SEQREC_TRACEBACK=1 for details)",
          file=sys.stderr)


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
    previous = _stop_on_signals()
    try:
      return main(argv)
    except Interrupted as e:  # outside the training loop (start-up, final test)
      print(f"stopped by {e.args[0]} outside the training loop; nothing that was not already "
            "checkpointed is lost: run the same command again to go on", file=sys.stderr)
      sys.exit(0)
    except KeyboardInterrupt:  # a second Ctrl-C during training: quit at once
      print("interrupted (second SIGINT): quit without a new checkpoint; run the same "
            "command again to resume from the last one", file=sys.stderr)
      sys.exit(130)
    except USER_ERRORS as e:
      if show_tracebacks():
        raise
      text = str(e.args[0]) if isinstance(e, KeyError) and e.args else str(e)
      print(f"error: {type(e).__name__}: {text}", file=sys.stderr)
      print("(full traceback: set SEQREC_TRACEBACK=1)", file=sys.stderr)
      sys.exit(2)

    finally:
      for sig, handler in previous.items():
        signal.signal(sig, handler)

  return wrapped


class Interrupted(BaseException):
  """SIGTERM / SIGINT arrived where no training step is in flight (the training loop
  installs its own handlers: finish the step, checkpoint, return)."""


def _stop_on_signals() -> dict:
  def handle(signum, frame):
    del frame
    raise Interrupted(signal.Signals(signum).name)
  previous = {}
  if threading.current_thread() is threading.main_thread():
    for sig in (signal.SIGTERM, signal.SIGINT):
      previous[sig] = signal.signal(sig, handle)
  return previous


def _config_override_keys(argv: list[str]) -> list[str]:
  """The dotted keys of `--config.a.b=v` / `--config.a.b v` flags, in order."""
  keys = []
  for arg in argv[1:]:
    if arg.startswith("--config."):
      keys.append(arg[len("--config."):].split("=", 1)[0])
  return keys


def _parse_flags(argv: list[str]) -> list[str]:
  """absl's flag parsing, with an unknown `--config.x.y` override (ml_collections
  raises KeyError / AttributeError for those) as one line naming it, with a suggestion."""
  try:
    return app.parse_flags_with_usage(argv)
  except (KeyError, AttributeError) as e:
    if os.environ.get("SEQREC_TRACEBACK"):
      raise
    # pylint: disable=import-outside-toplevel (only on this error path)
    from seqrec_jax import config as config_lib
    from seqrec_jax import config_schema
    known = config_schema.leaves(config_lib.base_config())
    sections = {k.rsplit(".", 1)[0] for k in known if "." in k}
    bad = [k for k in _config_override_keys(argv) if k not in known and k not in sections
           and not k.startswith("data.synthetic.")]
    text = (config_schema.unknown_key_message(bad[0]) if bad
            else f"bad --config override: {str(e.args[0]) if e.args else e}")
    print(f"error: {text}", file=sys.stderr)
    sys.exit(2)


def run(main: Callable[[list[str]], None]) -> None:
  _stop_on_signals()  # from here on (the config file's imports take seconds)
  try:
    app.run(guarded(main), flags_parser=_parse_flags)
  except Interrupted as e:
    print(f"stopped by {e.args[0]} while starting; nothing was lost: run the same command "
          "again", file=sys.stderr)
    sys.exit(0)
