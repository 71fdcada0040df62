"""Ctrl-C and SIGTERM end a training run cleanly: the epoch in progress is abandoned (nothing of it is saved), a
checkpoint being written is finished first, and the run exits 130 (SIGINT) or 143 (SIGTERM) with one line saying
where to resume. It never pushes and never prints a final result (the trainers stop before either).

``install_stop_signals()`` makes both signals raise ``RunInterrupted``; inside ``deferred_interrupts()`` (around a
checkpoint save) a signal is held and raised when the block ends, so ``last.pth.tar`` is never left half written.
"""
import contextlib
import os
import signal
from typing import Optional

__all__ = ['RunInterrupted', 'install_stop_signals', 'deferred_interrupts', 'stopped_run']


class RunInterrupted(KeyboardInterrupt):
    """A stop signal during training; ``exit_code`` is the shell's 128 + signal number."""

    def __init__(self, signum: int, message: str = ''):
        super().__init__(message)
        self.signum = signum
        self.epoch: Optional[int] = None
        self.after_save = False  # held through a checkpoint save: the epoch being saved is complete

    @property
    def exit_code(self) -> int:
        return 128 + self.signum

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name


_state = {'defer': 0, 'pending': None}


def _on_signal(signum, frame):
    if _state['defer']:
        _state['pending'] = signum
        return
    raise RunInterrupted(signum)


def install_stop_signals() -> None:
    """SIGINT and SIGTERM raise ``RunInterrupted`` in the main thread from now on."""
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _on_signal)


@contextlib.contextmanager
def deferred_interrupts():
    """Hold a stop signal until the block (a checkpoint save) has finished, then raise it."""
    _state['defer'] += 1
    try:
        yield
    finally:
        _state['defer'] -= 1
    if not _state['defer'] and _state['pending'] is not None:
        signum, _state['pending'] = _state['pending'], None
        error = RunInterrupted(signum)
        error.after_save = True
        raise error


def stopped_run(error: RunInterrupted, epoch: int, output_dir: Optional[str]) -> RunInterrupted:
    """The trainers' one line for ``error`` raised in ``epoch``: the signal, the abandoned epoch (the next one when
    the signal waited for ``epoch``'s checkpoint) and where to resume (the run's ``last.pth.tar``, written whole at
    the end of the last complete epoch)."""
    error.epoch = epoch + 1 if error.after_save else epoch
    last = os.path.join(output_dir or '', 'last.pth.tar')
    where = (f'resume with --resume {last}' if output_dir and os.path.isfile(last) else
             'no checkpoint was saved yet: start the run again')
    return RunInterrupted(error.signum, f'interrupted by {error.name} during epoch {error.epoch} (its updates are '
                                        f'not saved); {where}')
