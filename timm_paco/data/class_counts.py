"""Training-set class counts: read from a dataset's labels (never its images) and saved next to checkpoints.

``class_counts.json`` holds ``{"num_classes": C, "class_counts": [n_0, ..., n_{C-1}]}``; train.py writes it
into its output folder, validate.py reads it from beside the checkpoint (many / medium / few splits, logit
adjustment).
"""
import json
import os
from functools import partial
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch.utils.data

__all__ = ['CLASS_COUNTS_FILE', 'NoLabelsError', 'dataset_targets', 'count_classes', 'check_dataset_classes',
           'save_class_counts', 'load_class_counts']

CLASS_COUNTS_FILE = 'class_counts.json'


class NoLabelsError(ValueError):
    """A dataset exposes no labels to read without decoding images (a stream, an unknown dataset type)."""


def _as_int_list(labels) -> List[int]:
    if hasattr(labels, 'tolist'):
        labels = labels.tolist()
    return [int(t) for t in labels]


def dataset_targets(dataset) -> List[int]:
    """Integer labels of every sample, in dataset order, without decoding an image.

    Understands a ``targets`` attribute (torchvision datasets, this package's datasets and wrappers), timm's
    ``ImageDataset`` readers (``targets`` or ``samples``), torchvision's ``_labels`` and ``torch.utils.data.Subset``.
    """
    if isinstance(dataset, torch.utils.data.Subset) and not hasattr(dataset, 'targets'):
        base = dataset_targets(dataset.dataset)
        return [base[i] for i in dataset.indices]
    if hasattr(dataset, 'targets'):
        return _as_int_list(dataset.targets)
    reader = getattr(dataset, 'reader', None)
    if reader is not None:
        if hasattr(reader, 'targets'):
            return _as_int_list(reader.targets)
        if hasattr(reader, 'samples'):
            return _as_int_list(target for _, target in reader.samples)
    if hasattr(dataset, '_labels'):
        return _as_int_list(dataset._labels)
    raise NoLabelsError(
        f'dataset: {type(dataset).__name__} exposes no labels to count classes from; expected a `targets` '
        f'attribute, a timm ImageDataset reader with `samples`, or a Subset of such a dataset')


def count_classes(dataset, num_classes: Optional[int] = None) -> List[int]:
    """Samples per class ``[C]`` from ``dataset_targets``; ``C`` = ``num_classes`` or the largest label + 1."""
    targets = dataset_targets(dataset)
    if not targets:
        raise ValueError(f'dataset: {type(dataset).__name__} is empty; no class counts to compute')
    low, high = min(targets), max(targets)
    if low < 0:
        raise ValueError(f'dataset: labels must be >= 0, found {low}')
    if num_classes is None:
        num_classes = high + 1
    elif high >= num_classes:
        raise ValueError(f'num_classes: dataset has label {high}, expected labels in [0, {num_classes})')
    counts = [0] * num_classes
    for t in targets:
        counts[t] += 1
    return counts


def _declared_classes(dataset) -> Optional[Tuple[int, Callable[[], str]]]:
    """``(number of classes, where)`` a dataset declares apart from its labels: a timm reader's ``class_to_idx``
    (folders / tar members, or ``--class-map``) or torchvision's ``classes``, through ``.dataset`` wrappers
    (Subset, ImbalancedDataset, ImageModeDataset); None when it declares none (split lists, streams). ``where()``
    describes the source for an error message (it lists folders: only called on a mismatch)."""
    while dataset is not None:
        reader = getattr(dataset, 'reader', None)
        mapping = getattr(reader, 'class_to_idx', None)
        if isinstance(mapping, dict) and mapping:
            return max(mapping.values()) + 1, partial(_describe_folders, reader, mapping)
        classes = getattr(dataset, 'classes', None)
        if isinstance(classes, (list, tuple)) and classes:
            while getattr(dataset, 'dataset', None) is not None:  # name the dataset, not its wrappers
                dataset = dataset.dataset
            return len(classes), partial(str, f'{type(dataset).__name__} ({len(classes)} classes)')
        dataset = getattr(dataset, 'dataset', None)
    return None


def _describe_folders(reader, mapping: Dict[str, int]) -> str:
    """A timm reader's root, its classes, the class folders with images and those without."""
    root = getattr(reader, 'root', None)
    folders = ''
    if isinstance(root, str) and os.path.isdir(root):
        empty = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)) and d not in mapping)
        folders = f'; class folders without images: {empty}' if empty else ''
    with_images = len({target for _, target in getattr(reader, 'samples', [])})
    return f'{root} ({len(mapping)} classes, {with_images} class folders with images{folders})'


def check_dataset_classes(dataset, num_classes: int, flag: str = '--num-classes') -> None:
    """Stop when a dataset that declares its classes (folders, torchvision) has a different number of them than
    ``num_classes``: its labels would not be the model's classes, or classes without samples would pad the class
    counts (and the long-tail profile)."""
    declared = _declared_classes(dataset)
    if declared is not None and declared[0] != num_classes:
        raise ValueError(f'{flag} {num_classes}: the dataset declares {declared[0]} classes, {declared[1]()}')


def _counts_file(path: str) -> str:
    """A folder, a ``.json`` file, or a checkpoint file whose folder holds ``class_counts.json``."""
    if os.path.isdir(path):
        return os.path.join(path, CLASS_COUNTS_FILE)
    if path.endswith('.json'):
        return path
    return os.path.join(os.path.dirname(path) or '.', CLASS_COUNTS_FILE)


def save_class_counts(class_counts: Sequence[int], path: str) -> str:
    """Write ``class_counts.json`` into folder ``path`` (or to ``path`` when it ends in .json); return the file."""
    counts = _as_int_list(class_counts)
    if not counts or min(counts) < 0:
        raise ValueError(f'class_counts: expected a non-empty list of counts >= 0, got {counts[:10]}')
    if not path.endswith('.json'):
        os.makedirs(path, exist_ok=True)
    filename = _counts_file(path)
    tmp = filename + '.tmp'
    with open(tmp, 'w') as f:
        json.dump({'num_classes': len(counts), 'class_counts': counts}, f)
    os.replace(tmp, filename)
    return filename


def load_class_counts(path: str) -> List[int]:
    """Read class counts ``[C]`` from a folder, a ``.json`` file, or the folder of a checkpoint file."""
    filename = _counts_file(path)
    if not os.path.isfile(filename):
        raise FileNotFoundError(f'class counts file {filename} not found (train.py writes it beside checkpoints)')
    with open(filename) as f:
        try:
            data = json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f'{filename}: not valid JSON ({e})') from e
    counts = data.get('class_counts') if isinstance(data, dict) else None
    num_classes = data.get('num_classes') if isinstance(data, dict) else None
    if (not isinstance(counts, list) or not counts
            or not all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in counts)):
        raise ValueError(f'{filename}: expected "class_counts" to be a non-empty list of integers >= 0')
    if num_classes != len(counts):
        raise ValueError(
            f'{filename}: "num_classes" is {num_classes!r} but "class_counts" has {len(counts)} entries')
    return counts
