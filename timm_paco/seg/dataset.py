"""A segmentation folder: ``<root>/<split>/images/<name>.<png|jpg>`` with ``<root>/<split>/masks/<name>.png``
(8-bit labels, ``ignore_index`` 255 for unlabelled pixels), read as ``(image [3, H, W] float, labels [H, W] int64)``.

Training adds a horizontal flip of image and labels together (``train=True``); images are normalised with the
ImageNet mean and std, the statistics of timm encoders.
"""
import json
import os
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

__all__ = ['SegFolder', 'read_class_names', 'count_labels', 'IMAGE_EXTENSIONS']

IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg')


def read_class_names(root: str) -> Optional[List[str]]:
    """Class names of a segmentation folder: ``classes.json`` (a list) or a mosaic set's ``mosaics.json``."""
    for name, key in (('classes.json', None), ('mosaics.json', 'classes')):
        path = os.path.join(root, name)
        if os.path.isfile(path):
            with open(path) as f:
                data = json.load(f)
            return list(data[key] if key else data)
    return None


class SegFolder(torch.utils.data.Dataset):
    def __init__(self, root: str, split: str, train: bool = False, mean: Sequence[float] = IMAGENET_DEFAULT_MEAN,
                 std: Sequence[float] = IMAGENET_DEFAULT_STD):
        images = os.path.join(root, split, 'images')
        masks = os.path.join(root, split, 'masks')
        if not os.path.isdir(images) or not os.path.isdir(masks):
            raise FileNotFoundError(f'--data-dir {root}: no {split}/images and {split}/masks folders (a '
                                    f'segmentation folder; python -m timm_paco.seg mosaics writes one)')
        self.items: List[Tuple[str, str]] = []
        for name in sorted(os.listdir(images)):
            stem, ext = os.path.splitext(name)
            if ext.lower() not in IMAGE_EXTENSIONS:
                continue
            mask = os.path.join(masks, stem + '.png')
            if not os.path.isfile(mask):
                raise FileNotFoundError(f'{os.path.join(images, name)} has no label map {mask}')
            self.items.append((os.path.join(images, name), mask))
        if not self.items:
            raise FileNotFoundError(f'--data-dir {root}: {images} holds no images ({", ".join(IMAGE_EXTENSIONS)})')
        self.train = train
        self.mean = torch.tensor(mean).view(3, 1, 1)
        self.std = torch.tensor(std).view(3, 1, 1)

    def __len__(self) -> int:
        return len(self.items)

    def read(self, index: int) -> Tuple[np.ndarray, np.ndarray]:
        """(image [H, W, 3] uint8, labels [H, W] uint8) as stored."""
        from PIL import Image
        image_path, mask_path = self.items[index]
        image = np.asarray(Image.open(image_path).convert('RGB'))
        mask = np.asarray(Image.open(mask_path))
        if mask.ndim != 2 or mask.shape != image.shape[:2]:
            raise ValueError(f'{mask_path}: a label map must be one channel of the image\'s size '
                             f'{image.shape[:2]}, got {mask.shape}')
        return image, mask

    def __getitem__(self, index: int):
        image, mask = self.read(index)
        x = torch.from_numpy(image.copy()).permute(2, 0, 1).float().div_(255)
        y = torch.from_numpy(mask.astype(np.int64))
        if self.train and torch.rand(()) < 0.5:
            x, y = x.flip(-1), y.flip(-1)
        return (x - self.mean) / self.std, y


def count_labels(root: str, split: str, num_classes: int, ignore_index: int) -> List[int]:
    """Labelled pixels per class [num_classes] over ``split``'s label maps; ValueError naming the first label map
    that holds a value neither a class (``0 .. num_classes - 1``) nor ``ignore_index``, or is not one channel."""
    from PIL import Image
    counts = np.zeros(num_classes, np.int64)
    for _, mask_path in SegFolder(root, split).items:
        with Image.open(mask_path) as mask_image:
            mask = np.asarray(mask_image)
        if mask.ndim != 2:
            raise ValueError(f'{mask_path}: a label map must be one channel, got shape {mask.shape}')
        histogram = np.bincount(mask.ravel().astype(np.int64), minlength=num_classes)
        stray = [v for v in np.flatnonzero(histogram[num_classes:]) + num_classes if v != ignore_index]
        if stray:
            raise ValueError(f'{mask_path}: label {stray[0]} is neither a class of --num-classes {num_classes} '
                             f'(0 to {num_classes - 1}) nor --ignore-index {ignore_index}; correct the label map '
                             f'or the flags')
        counts += histogram[:num_classes]
    return counts.tolist()
