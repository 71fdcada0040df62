"""Split-list datasets: ImageNet-LT, Places-LT, iNaturalist 2018 as published with the long-tail papers.

A split list is a text file with one ``relative/path label`` per line (``ImageNet_LT_train.txt``,
``Places_LT_test.txt``, ``iNaturalist18_val.txt`` …); paths resolve against an image root. The reader plugs
into timm's ``ImageDataset``, so images are opened with PIL and converted to ``input_img_mode`` as for any
timm dataset. Every listed file is checked when the dataset is built; a bad line stops with ``file:line``.
"""
import os
import re
from typing import List, Optional, Tuple

from timm.data.readers.reader import Reader

from .image_files import CheckedImageDataset

__all__ = ['ReaderSplitList', 'SplitListDataset', 'read_split_list', 'resolve_split_list']

_SPLIT_NAMES = dict(
    train='train', training='train',
    val='val', valid='val', validation='val', eval='val', evaluation='val',
    test='test',
)
_SPLIT_SUFFIX = re.compile(r'^(?P<stem>.*)_train\.txt$')


def read_split_list(
        list_file: str,
        root: str,
        num_classes: Optional[int] = None,
        check_files: bool = True,
) -> List[Tuple[str, int]]:
    """Parse ``list_file`` into ``[(absolute path, label)]``; raise naming ``file:line`` on any bad line.

    A path listed again with the same label is kept (a repeated sample); with another label it is refused.
    """
    if not os.path.isfile(list_file):
        raise FileNotFoundError(f'split list {list_file} not found')
    if not os.path.isdir(root):
        raise FileNotFoundError(f'image root {root} (--data-dir) for split list {list_file} is not a folder')
    samples, first_seen = [], {}
    with open(list_file, encoding='utf-8-sig') as f:
        for line_no, line in enumerate(f, start=1):
            line = line.strip()
            if not line:
                continue
            where = f'{list_file}:{line_no}'
            fields = line.rsplit(maxsplit=1)
            if len(fields) != 2:
                raise ValueError(f'{where}: expected "relative/path label", got {line!r}')
            rel_path, label = fields
            try:
                label = int(label)
            except ValueError:
                raise ValueError(f'{where}: label {label!r} is not an integer') from None
            if label < 0 or (num_classes is not None and label >= num_classes):
                expected = '>= 0' if num_classes is None else f'in [0, {num_classes})'
                raise ValueError(f'{where}: label {label} out of range, expected {expected}')
            earlier = first_seen.setdefault(rel_path, (label, line_no))
            if earlier[0] != label:
                raise ValueError(f'{where}: {rel_path} has label {label}, but line {earlier[1]} gives it {earlier[0]}')
            path = os.path.join(root, rel_path)
            if check_files and not os.path.isfile(path):
                raise FileNotFoundError(f'{where}: image {path} not found (root {root})')
            samples.append((path, label))
    if not samples:
        raise ValueError(f'{list_file}: no samples listed')
    return samples


def resolve_split_list(list_file: str, split: Optional[str]) -> str:
    """Pick the list for ``split``.

    ``split`` naming a ``.txt`` file is used as is. The training list ``<stem>_train.txt`` stands for the whole
    set: it is swapped for ``<stem>_<split>.txt`` (``validation`` and its synonyms -> ``val``), so
    ``lt:/x/ImageNet_LT_train.txt`` with ``--val-split test`` reads ``ImageNet_LT_test.txt``. Any other list
    (``ImageNet_LT_test.txt`` named directly, too) is read as given for every split.
    """
    if split and split.endswith('.txt'):
        return split
    match = _SPLIT_SUFFIX.match(os.path.basename(list_file))
    if not split or match is None:
        return list_file
    if split not in _SPLIT_NAMES:
        raise ValueError(
            f'split: {split!r} has no split list next to {list_file}; expected one of {sorted(_SPLIT_NAMES)} '
            f'or a path to a .txt split list')
    name = f'{match.group("stem")}_{_SPLIT_NAMES[split]}.txt'
    return os.path.join(os.path.dirname(list_file), name)


class ReaderSplitList(Reader):
    """timm reader over a split list: ``samples`` ``[(path, label)]``, ``targets`` ``[label]``."""

    def __init__(self, list_file: str, root: str, num_classes: Optional[int] = None, check_files: bool = True):
        super().__init__()
        self.list_file = list_file
        self.root = root
        self.samples = read_split_list(list_file, root, num_classes=num_classes, check_files=check_files)
        self.targets = [label for _, label in self.samples]

    def __getitem__(self, index):
        path, target = self.samples[index]
        return open(path, 'rb'), target

    def __len__(self):
        return len(self.samples)

    def _filename(self, index, basename=False, absolute=False):
        filename = self.samples[index][0]
        if basename:
            return os.path.basename(filename)
        if not absolute:
            return os.path.relpath(filename, self.root)
        return filename


class SplitListDataset(CheckedImageDataset):
    """timm ``ImageDataset`` over a split list (read as ``image_files`` reads images); ``targets`` gives labels
    without decoding images."""

    def __init__(
            self,
            list_file: str,
            root: str,
            num_classes: Optional[int] = None,
            input_img_mode: str = 'RGB',
            transform=None,
            target_transform=None,
            check_files: bool = True,
    ):
        reader = ReaderSplitList(list_file, root, num_classes=num_classes, check_files=check_files)
        super().__init__(
            root,
            reader=reader,
            input_img_mode=input_img_mode,
            transform=transform,
            target_transform=target_transform,
        )

    @property
    def targets(self) -> List[int]:
        return self.reader.targets

    @property
    def list_file(self) -> str:
        return self.reader.list_file
