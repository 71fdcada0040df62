"""Image files read as they are, or refused by name.

timm's ``ImageDataset`` converts every image with PIL's ``convert``, which clips 16-bit pixels at 255 (a 16-bit
PNG becomes a nearly white image), and replaces a file it cannot decode by the next one in the folder (a training
set trains on a neighbour twice, a validation set scores it twice), naming only the index. Here:

- 16-bit greyscale (``I;16*``) is scaled to 8 bits (``round(v · 255 / 65535)``) before the mode conversion; 32-bit
  integer and float images (``I``, ``F``), whose range is not known, are refused naming the file; every other PIL
  mode converts with PIL.
- A folder that cannot be listed is refused by name (``check_readable_folders``), never taken for a class without
  images.
- A file that cannot be read raises ``UnreadableImageError`` naming it. ``drop_unreadable`` instead reads every
  image once, before training or validation, and leaves those that fail out of the dataset (counted and named):
  each remaining image is then used exactly once per epoch.
"""
import os
from typing import List, Optional, Tuple

import numpy as np
import torch.utils.data
from PIL import Image
from timm.data import ImageDataset

__all__ = ['UnreadableImageError', 'CheckedImageDataset', 'to_image_mode', 'drop_unreadable',
           'check_readable_folders']

_SIXTEEN_BIT = ('I;16', 'I;16L', 'I;16B', 'I;16N')
_UNKNOWN_RANGE = {'I': '32-bit integer', 'F': '32-bit float'}


class UnreadableImageError(OSError):
    """An image file that cannot be decoded or converted; the message names the file."""


def to_image_mode(img: Image.Image, mode: str) -> Image.Image:
    """``img`` in PIL ``mode``, 16-bit greyscale scaled to 8 bits; ValueError for ``I`` / ``F`` pixels."""
    if img.mode in _SIXTEEN_BIT:
        wide = np.asarray(img, dtype=np.uint32)
        img = Image.fromarray(((wide * 255 + 32767) // 65535).astype(np.uint8), 'L')
    elif img.mode in _UNKNOWN_RANGE and mode != img.mode:
        raise ValueError(f'{_UNKNOWN_RANGE[img.mode]} pixels (PIL mode {img.mode}) have no known range to '
                         f'scale to {mode}; save it with 8 or 16 bits per channel')
    return img if img.mode == mode else img.convert(mode)


class CheckedImageDataset(ImageDataset):
    """timm's ``ImageDataset`` (same reader, transform and targets) whose images are read by ``to_image_mode`` and
    whose unreadable files raise ``UnreadableImageError`` naming them, never replaced by a neighbour."""

    @classmethod
    def of(cls, dataset: ImageDataset) -> 'CheckedImageDataset':
        """The same dataset (its reader, options and transforms) read this way."""
        return cls(getattr(dataset.reader, 'root', None), reader=dataset.reader, load_bytes=dataset.load_bytes,
                   input_img_mode=dataset.input_img_mode, transform=dataset.transform,
                   target_transform=dataset.target_transform, additional_features=dataset.additional_features)

    def path(self, index: int) -> str:
        """The file of sample ``index`` as its reader names it (a reader that cannot: its type)."""
        try:
            return str(self.reader.filename(index, absolute=True))
        except (KeyError, TypeError, IndexError, NotImplementedError, AttributeError):
            return f'of {type(self.reader).__name__}'

    def load(self, index: int):
        """(image in ``input_img_mode``, or the file's bytes with ``load_bytes``; target; *features)."""
        file, target, *features = self.reader[index]
        try:
            if self.load_bytes:
                img = file.read()
            else:
                with Image.open(file) as opened:
                    opened.load()  # decode now, while the file is open (errors named below)
                    img = to_image_mode(opened, self.input_img_mode) if self.input_img_mode else opened
                    img = opened.copy() if img is opened else img
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
            raise UnreadableImageError(f'image {self.path(index)} (sample {index}) cannot be read: '
                                       f'{" ".join(str(e).split()) or type(e).__name__}') from None
        finally:
            if hasattr(file, 'close'):
                file.close()
        return (img, target, *features)

    def __getitem__(self, index):
        img, target, *features = self.load(index)
        if self.transform is not None:
            img = self.transform(img)
        if target is None:
            target = -1
        elif self.target_transform is not None:
            target = self.target_transform(target)
        return (img, target) if self.additional_features is None else (img, target, *features)


class _Probe(torch.utils.data.Dataset):
    """Each index of a ``CheckedImageDataset`` -> '' when its image reads, else the reason."""

    def __init__(self, dataset: CheckedImageDataset):
        self.dataset = dataset

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, index):
        try:
            self.dataset.load(index)
            return ''
        except UnreadableImageError as e:
            return str(e)


def drop_unreadable(dataset, workers: int = 0) -> Optional[List[Tuple[int, str]]]:
    """Read every image of ``dataset`` (a ``CheckedImageDataset`` whose reader lists its ``samples``) once with
    ``workers`` processes and remove those that fail from the reader; returns the [(index, reason)] removed, or
    None when the dataset is not read from a list of image files."""
    reader = getattr(dataset, 'reader', None)
    if not isinstance(dataset, CheckedImageDataset) or not isinstance(getattr(reader, 'samples', None), list):
        return None
    loader = torch.utils.data.DataLoader(_Probe(dataset), batch_size=None, num_workers=workers)
    bad = [(i, reason) for i, reason in enumerate(loader) if reason]
    if bad:
        gone = {i for i, _ in bad}
        reader.samples = [s for i, s in enumerate(reader.samples) if i not in gone]
        if isinstance(getattr(reader, 'targets', None), list):
            reader.targets = [t for i, t in enumerate(reader.targets) if i not in gone]
    return bad


def check_readable_folders(root: str, what: str) -> None:
    """UnreadableImageError naming the first folder under ``root`` that cannot be listed (timm's folder reader
    passes over such a folder silently, as if its class had no images); ``what`` starts the message."""
    def refuse(error: OSError):
        raise UnreadableImageError(f'{what}: {error.filename}: cannot be read ({error.strerror}); fix its '
                                   f'permissions') from None
    for _ in os.walk(root, onerror=refuse):
        pass
