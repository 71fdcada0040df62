"""Dataset factory: timm's ``create_dataset`` plus split lists, a long-tail profile and colour-mode conversion.

``--dataset lt:/path/ImageNet_LT_train.txt --data-dir /imagenet`` reads a split list (paths relative to
``--data-dir``); any other name goes to ``timm.data.create_dataset``. ``--imb-factor`` subsamples the training
split with the exponential profile of ``imbalance.py``.
"""
import logging
import os
from typing import Optional

from timm.data import ImageDataset, create_dataset

from .image_files import CheckedImageDataset, UnreadableImageError, check_readable_folders, drop_unreadable
from .image_mode import ImageModeDataset
from .imbalance import ImbalancedDataset, check_imb_factor
from .lt_list import SplitListDataset, resolve_split_list
from .splits import is_folder_dataset, split_source

__all__ = ['LT_PREFIX', 'create_paco_dataset']

LT_PREFIX = 'lt:'

_logger = logging.getLogger(__name__)


def _leave_out_unreadable(dataset, split: str, workers: int) -> None:
    total = len(dataset)
    bad = drop_unreadable(dataset, workers)
    if bad is None:
        _logger.info(f'{split}: not read from image files; no image to leave out')
    elif len(bad) == total:
        raise UnreadableImageError(f'{split}: none of its {total} images can be read ({bad[0][1]})')
    elif bad:
        _logger.warning(f'{split}: {len(bad)} of {total} images cannot be read and are left out: '
                        + '; '.join(reason for _, reason in bad[:5]) + ('; …' if len(bad) > 5 else ''))


def create_paco_dataset(
        name: str,
        root: Optional[str] = None,
        split: str = 'train',
        is_training: bool = False,
        imb_factor: Optional[float] = None,
        imb_seed: int = 0,
        num_classes: Optional[int] = None,
        input_img_mode: str = 'RGB',
        download: bool = False,
        split_arg: str = '--split',
        skip_unreadable: bool = False,
        scan_workers: int = 0,
        **timm_kwargs,
):
    """Create a dataset that returns ``(image, target)`` with images in ``input_img_mode``.

    Args:
        name: ``lt:<split list>`` or any timm dataset name (``torch/cifar100``, ``torch/fashion_mnist``, a
            folder reader ``''`` …).
        root: Image root (``--data-dir``); split-list paths resolve against it.
        split: Split name; for ``lt:`` lists named ``<stem>_train.txt`` the list for ``split`` is
            ``<stem>_<split>.txt`` (see ``lt_list.resolve_split_list``).
        is_training: Training split: the long-tail profile is applied only here.
        imb_factor: Long-tail ratio ``n_min / n_max`` in (0, 1]; ``None`` keeps the dataset as is.
        imb_seed: Seed fixing which samples the long-tail profile keeps.
        num_classes: Labels must lie in ``[0, num_classes)``; also the class count of the profile.
        input_img_mode: PIL mode images are converted to (``'RGB'`` for 3-channel models).
        download: Passed to timm (torchvision datasets).
        split_arg: The flag that named ``split``, for messages (a split not found raises
            ``splits.SplitNotFoundError``: no fallback to the root, see ``splits.py``).
        skip_unreadable: Read every image file once now (with ``scan_workers`` processes) and leave out those that
            cannot be read, naming them in a warning; by default such a file stops loading, named
            (``image_files.UnreadableImageError``).
        **timm_kwargs: Passed to ``timm.data.create_dataset``.
    """
    if imb_factor is not None:
        check_imb_factor(imb_factor)
    if name.startswith(LT_PREFIX):
        list_file = resolve_split_list(name[len(LT_PREFIX):], split)
        if root is None:
            raise ValueError(f'root: --data-dir is needed to resolve the image paths of split list {list_file}')
        dataset = SplitListDataset(list_file, root, num_classes=num_classes, input_img_mode=input_img_mode)
        _logger.info(f'{split_arg} {split}: {list_file} (images under {root})')
    else:
        source = split_source(name, root, split, split_arg)
        if is_folder_dataset(name):
            root = source
            if os.path.isdir(source):
                check_readable_folders(source, f'{split_arg} {split}')
        _logger.info(f'{split_arg} {split}: {source}')
        dataset = create_dataset(
            name,
            root=root,
            split=split,
            search_split=False,
            is_training=is_training,
            download=download,
            input_img_mode=input_img_mode,
            **timm_kwargs,
        )
        if name.lower().startswith('torch/') and input_img_mode:
            dataset = ImageModeDataset(dataset, input_img_mode)
        elif type(dataset) is ImageDataset:  # timm's folder / tar datasets: images read as image_files reads them
            dataset = CheckedImageDataset.of(dataset)
    if skip_unreadable:
        _leave_out_unreadable(dataset, f'{split_arg} {split}', scan_workers)
    if imb_factor is not None and is_training:
        dataset = ImbalancedDataset(dataset, imb_factor, seed=imb_seed, num_classes=num_classes)
    return dataset
