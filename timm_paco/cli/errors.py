"""The scripts' entry point: a user error ends in one line on stderr and a non-zero exit code (2 for a usage
error, 1 otherwise), no traceback unless ``--debug`` or ``TIMM_PACO_DEBUG=1`` asks for it.

``main(argv)`` functions keep raising (tests and callers see the exception); only the ``__main__`` path goes
through ``run_main``.
"""
import os
import sys
from typing import Callable, Optional, Sequence

from timm_paco.cli.usage import UsageError

__all__ = ['DEBUG_ENV', 'debug_requested', 'one_line', 'run_main']

DEBUG_ENV = 'TIMM_PACO_DEBUG'
_USER_ERRORS = (ValueError, OSError, RuntimeError, ImportError, LookupError)
_WORKER_TRACEBACK = 'Original Traceback (most recent call last):'  # torch's ExceptionWrapper


def debug_requested(argv: Sequence[str]) -> bool:
    return '--debug' in argv or os.environ.get(DEBUG_ENV, '').strip() not in ('', '0')


def one_line(error: BaseException) -> str:
    """The error's message on one line (its type when it has none); a programming error (not a ValueError,
    OSError, RuntimeError, ImportError or LookupError) says how to see the traceback."""
    message = str(error)
    if _WORKER_TRACEBACK in message:  # re-raised from a DataLoader worker: the worker's own last line is the message
        message = message.rstrip().splitlines()[-1].split(': ', 1)[-1]
    text = ' '.join(message.split()) or type(error).__name__
    if isinstance(error, KeyError) and len(error.args) == 1:
        text = f'key {error.args[0]!r} not found'
    if not isinstance(error, _USER_ERRORS):
        text = f'{type(error).__name__}: {text} (run with --debug or {DEBUG_ENV}=1 for the traceback)'
    return text


def run_main(main: Callable, prog: str, argv: Optional[Sequence[str]] = None) -> int:
    """Run ``main(argv)``; return its exit code (``main``'s when it returns an int, else 0; 1 / 2 after printing
    ``<prog>: error: <message>``)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = debug_requested(argv)
    try:
        code = main(argv)
    except KeyboardInterrupt as e:  # Ctrl-C; a trainer's RunInterrupted says where to resume and its exit code
        print(f'{prog}: {" ".join(str(e).split()) or "interrupted"}', file=sys.stderr)
        return getattr(e, 'exit_code', 130)
    except SystemExit as e:  # argparse's usage errors (2) and explicit exits
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except Exception as e:  # noqa: BLE001  every error is reported; --debug shows the traceback
        if debug:
            raise
        print(f'{prog}: error: {one_line(e)}', file=sys.stderr)
        return 2 if isinstance(e, UsageError) else 1
    return code if isinstance(code, int) else 0
