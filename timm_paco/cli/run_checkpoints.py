"""A run's folder (``--output`` / ``--experiment``) and the checkpoints it holds, newest loadable first: what
``--resume FOLDER`` and ``--resume auto`` resume, and what the refusal of a rerun (or of a missing ``--resume``
file) offers.

timm's ``CheckpointSaver`` writes ``tmp.pth.tar``, unlinks ``last.pth.tar`` and renames the one to the other; a run
killed between the two leaves no ``last.pth.tar`` but a whole ``tmp.pth.tar`` and the ``checkpoint-N.pth.tar``
history, and a run killed while writing leaves a partial ``tmp.pth.tar``. Candidates are tried newest file first
(last before tmp before the history on a tie) and the first that loads as a train.py checkpoint is the one.
"""
import glob
import logging
import os
from typing import Optional, Tuple

from timm_paco.checkpoint_io import load_checkpoint_file

__all__ = ['CHECKPOINT_PATTERNS', 'experiment_folder', 'newest_checkpoint', 'find_resume']

_logger = logging.getLogger('train')

CHECKPOINT_PATTERNS = ('last.pth.tar', 'tmp.pth.tar', 'checkpoint-*.pth.tar')


def experiment_folder(args) -> str:
    """The ``--experiment`` folder under ``--output`` (default ``./output/train``)."""
    return os.path.join(args.output or './output/train', args.experiment)


def _epoch(path: str) -> Optional[int]:
    """The epoch of the train.py checkpoint at ``path``; None when it is not one or cannot be read."""
    try:
        checkpoint = load_checkpoint_file(path)
    except (OSError, ValueError):
        return None
    if not isinstance(checkpoint, dict) or 'state_dict' not in checkpoint or 'epoch' not in checkpoint:
        return None
    return int(checkpoint['epoch'])


def newest_checkpoint(folder: str) -> Optional[Tuple[str, int]]:
    """(path, epoch) of the newest loadable train.py checkpoint in ``folder``; None when it holds none."""
    paths = [p for pattern in CHECKPOINT_PATTERNS for p in sorted(glob.glob(os.path.join(folder, pattern)))]
    for path in sorted(paths, key=lambda p: -os.path.getmtime(p)):  # stable: last, tmp, history on a tie
        epoch = _epoch(path)
        if epoch is not None:
            return path, epoch
    return None


def find_resume(args) -> str:
    """The checkpoint file ``--resume`` names: a ``--resume FOLDER``'s newest loadable checkpoint (ValueError when it
    has none); ``--resume auto`` (timm 1.0.31): the ``--experiment`` folder's newest, else '' (a fresh run); a
    ``--resume FILE`` as given, or a ValueError naming it when it does not exist while its folder holds a loadable
    checkpoint."""
    if args.resume == 'auto':
        folder = experiment_folder(args)
        found = newest_checkpoint(folder) if os.path.isdir(folder) else None
        _logger.info(f'--resume auto: resuming {found[0]} (epoch {found[1]})' if found else
                     f'--resume auto: no checkpoint in {folder} yet; starting the run')
        return found[0] if found else ''
    if not args.resume:
        return args.resume
    if os.path.isdir(args.resume):
        found = newest_checkpoint(args.resume)
        if found is None:
            raise ValueError(f'--resume {args.resume}: the folder holds no loadable train.py checkpoint '
                             f'({", ".join(CHECKPOINT_PATTERNS)})')
        _logger.info(f'--resume {args.resume}: resuming {found[0]}, its newest loadable checkpoint (epoch '
                     f'{found[1]})')
        return found[0]
    if not os.path.exists(args.resume) and os.path.isdir(os.path.dirname(args.resume) or '.'):
        found = newest_checkpoint(os.path.dirname(args.resume) or '.')
        if found is not None:
            raise ValueError(f'--resume {args.resume}: no such file; the newest loadable checkpoint in its folder '
                             f'is {found[0]} (epoch {found[1]}): resume with --resume {found[0]}')
    return args.resume
