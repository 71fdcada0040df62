"""Where a command that writes model files (the Hub export, the converter) may write: never over the file it reads,
never into a training run, and over earlier output only when asked.

A training run is a folder holding what train.py or the segmentation trainer writes (``RUN_MARKERS``); an output
folder that is one, or holds one below it, is refused whatever ``overwrite`` says, since replacing its contents
would delete the run's checkpoints and records.
"""
import glob
import os
import shutil
from typing import List, Sequence

__all__ = ['RUN_MARKERS', 'holds_run', 'runs_in', 'check_output_folder', 'check_output_file', 'clear_folder']

# the files only a training run's folder holds (train.py and python -m timm_paco.seg train), as glob patterns
RUN_MARKERS = ('args.yaml', 'summary.csv', 'last.pth.tar', 'checkpoint-*.pth.tar', 'recovery-*.pth.tar',
               '.run.lock')


def holds_run(folder: str) -> List[str]:
    """The run files in ``folder`` itself (sorted names; empty when it holds no run)."""
    return sorted({os.path.basename(p) for pattern in RUN_MARKERS for p in glob.glob(os.path.join(folder, pattern))})


def runs_in(folder: str) -> List[str]:
    """``folder`` and the folders below it that hold a training run."""
    return [path for path, _, _ in os.walk(folder) if holds_run(path)]


def _inside(path: str, folder: str) -> bool:
    path, folder = os.path.realpath(path), os.path.realpath(folder)
    return path == folder or os.path.commonpath([path, folder]) == folder


def check_output_folder(output_dir: str, reads: Sequence[str], overwrite: bool, what: str,
                        overwrite_flag: str = 'overwrite=True') -> List[str]:
    """The entries of ``output_dir`` to clear before writing into it (ValueError when it must not be written).

    Refused: an ``output_dir`` that holds one of the files in ``reads`` or a training run (``overwrite`` or not),
    or that is not empty without ``overwrite``. ``what`` names the argument in the message, ``overwrite_flag`` the
    way to pass ``overwrite`` (a CLI gives its flag).
    """
    if os.path.exists(output_dir) and not os.path.isdir(output_dir):
        raise ValueError(f"{what} '{output_dir}' is a file, not a folder: name a new or empty folder")
    for path in reads:
        if _inside(path, output_dir):
            raise ValueError(f"{what} '{output_dir}' holds the input {path}: writing there would replace what is "
                             f"being read; name a folder of its own")
    entries = sorted(os.listdir(output_dir)) if os.path.isdir(output_dir) else []
    runs = runs_in(output_dir) if entries else []
    if runs:
        files = ', '.join(holds_run(runs[0])[:4])
        raise ValueError(f"{what} '{output_dir}' holds a training run ({runs[0]}: {files}), which "
                         f"{overwrite_flag} would delete; name a folder of its own")
    if entries and not overwrite:
        listed = ', '.join(entries[:4]) + (' …' if len(entries) > 4 else '')
        raise ValueError(f"{what} '{output_dir}' is not empty ({listed}): name an empty or new folder, or pass "
                         f"{overwrite_flag} to replace its contents")
    return entries


def check_output_file(output: str, reads: Sequence[str], overwrite: bool, what: str,
                      overwrite_flag: str = 'overwrite=True') -> None:
    """ValueError when ``output`` (a file to write) is one of ``reads``, a folder, or an existing file without
    ``overwrite`` (named as in ``check_output_folder``)."""
    if not os.path.exists(output):
        return
    for path in reads:
        if os.path.exists(path) and os.path.samefile(path, output):
            raise ValueError(f"{what} '{output}' is the input {path}: name another file")
    if os.path.isdir(output):
        raise ValueError(f"{what} '{output}' is a folder: name a file")
    if not overwrite:
        raise ValueError(f"{what} '{output}' exists: name a new file, or pass {overwrite_flag} to replace it")


def clear_folder(folder: str, entries: Sequence[str]) -> None:
    """Remove ``entries`` (files and folders) of ``folder``."""
    for name in entries:
        path = os.path.join(folder, name)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.remove(path)
