"""Where a split's images are: the split folder of an image-folder dataset, or the train / test half of a
torchvision dataset, resolved strictly.

timm's split search falls back to the dataset root when no folder of the split exists, so a misspelled
``--val-split`` (or a root without one) validates on the training images with exit code 0, and torchvision
datasets read any split name that is not ``train`` as the test set. Here a split asked for and not found is an
error naming the splits that exist. A root without any split folder (only class folders) is the images of every
split asked for; train.py refuses to validate on the folder it trains on.
"""
import os
from typing import List, Optional

__all__ = ['TRAIN_SPLITS', 'EVAL_SPLITS', 'SplitNotFoundError', 'split_folders', 'resolve_split_folder',
           'check_torch_split', 'is_folder_dataset', 'split_source']

TRAIN_SPLITS = ('train', 'training')
EVAL_SPLITS = ('validation', 'val', 'valid', 'eval', 'evaluation')
_TEST_SPLITS = ('test',)
_TORCH_FOLDER_NAMES = ('torch/image_folder', 'torch/folder')
_TORCH_TRAIN_TEST = ('torch/cifar10', 'torch/cifar100', 'torch/mnist', 'torch/kmnist', 'torch/fashion_mnist',
                     'torch/qmnist')  # timm reads these as train=(split in TRAIN_SPLITS)


class SplitNotFoundError(ValueError):
    """A split asked for that the dataset does not have; the message names the splits it has."""


def _synonyms(split: str) -> tuple:
    for group in (TRAIN_SPLITS, EVAL_SPLITS, _TEST_SPLITS):
        if split in group:
            return (split,) + tuple(s for s in group if s != split)
    return (split,)


def is_folder_dataset(name: str) -> bool:
    """Whether timm reads ``name`` from a folder (or tar) under the root with its split search."""
    prefix, sep, _ = name.partition('/')
    return not sep or name.lower() in _TORCH_FOLDER_NAMES or prefix.lower() not in (
        'torch', 'hfds', 'hfids', 'tfds', 'wds')


def split_folders(root: str) -> List[str]:
    """The sub-folders of ``root`` named like a split (train / validation / test and their synonyms)."""
    known = TRAIN_SPLITS + EVAL_SPLITS + _TEST_SPLITS
    return sorted(d for d in os.listdir(root) if d in known and os.path.isdir(os.path.join(root, d)))


def resolve_split_folder(root: str, split: str, arg_name: str = '--split') -> str:
    """The folder holding ``split`` under ``root``: ``root/<split>`` or a synonym (``val`` for ``validation``);
    ``root`` itself when it has no split folder at all (class folders only). Raises SplitNotFoundError when
    ``root`` has split folders but not this one."""
    name = split.split('[')[0]
    for candidate in _synonyms(name):
        path = os.path.join(root, candidate)
        if os.path.isdir(path):
            return path
    present = split_folders(root)
    if present:
        raise SplitNotFoundError(
            f'{arg_name} {split}: {root} has no {name} folder; its splits are {", ".join(present)}: name one of '
            f'them')
    return root


def check_torch_split(name: str, split: str, arg_name: str = '--split') -> None:
    """torchvision's train / test datasets: the split must name the train or the evaluation half (timm reads any
    other name as the test set)."""
    if split not in TRAIN_SPLITS + EVAL_SPLITS + _TEST_SPLITS:
        raise SplitNotFoundError(
            f'{arg_name} {split}: {name} has a train split ({", ".join(TRAIN_SPLITS)}) and a test split '
            f'({", ".join(EVAL_SPLITS + _TEST_SPLITS)}); name one of them')


def split_source(name: str, root: Optional[str], split: str, arg_name: str = '--split') -> Optional[str]:
    """Where timm should read ``split`` of dataset ``name`` (split search off): the split folder of a folder
    dataset, ``root`` otherwise; for torchvision's train / test datasets ``root`` after checking the split name,
    with ``#train`` / ``#test`` appended so that two splits reading the same half compare equal."""
    lowered = name.lower()
    if lowered in _TORCH_TRAIN_TEST:
        check_torch_split(name, split, arg_name)
        return f'{root}#{"train" if split in TRAIN_SPLITS else "test"}'
    if is_folder_dataset(name) and root and os.path.isdir(root):
        return resolve_split_folder(root, split, arg_name)
    return root
