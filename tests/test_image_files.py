"""Images read as they are, or refused by name (timm_paco.data.image_files), on real PNG files."""
import os
import shutil

import numpy as np
import pytest
from PIL import Image
from timm.data import ImageDataset

from timm_paco.data.image_files import (
    CheckedImageDataset, UnreadableImageError, check_readable_folders, drop_unreadable, to_image_mode,
)


def test_16_bit_greyscale_is_scaled_not_clipped(tmp_path):
    values = np.arange(0, 65536, 13, dtype=np.uint16)[:64 * 64].reshape(64, 64)
    Image.fromarray(values).save(tmp_path / 'wide.png')
    with Image.open(tmp_path / 'wide.png') as img:
        assert img.mode == 'I;16'
        grey = np.asarray(to_image_mode(img, 'L'))
        rgb = np.asarray(to_image_mode(img, 'RGB'))
    expected = np.round(values.astype(np.float64) / 257).astype(np.uint8)  # v · 255 / 65535, never a tie
    assert np.array_equal(grey, expected)
    assert np.array_equal(rgb, np.repeat(expected[..., None], 3, axis=2))
    assert (grey == 255).mean() < 0.01  # PIL's own convert: 99 % white


@pytest.mark.parametrize('mode', ['1', 'L', 'P', 'LA', 'RGBA', 'CMYK', 'YCbCr'])
def test_other_modes_convert_as_pil_does(mode):
    rng = np.random.default_rng(0)
    img = Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).convert(mode)
    for target in ('RGB', 'L'):
        assert np.array_equal(np.asarray(to_image_mode(img, target)), np.asarray(img.convert(target)))


def test_images_of_unknown_range_are_refused():
    for mode, words in (('I', '32-bit integer'), ('F', '32-bit float')):
        with pytest.raises(ValueError, match=f'{words} pixels \\(PIL mode {mode}\\) have no known range'):
            to_image_mode(Image.new(mode, (4, 4)), 'RGB')
        assert to_image_mode(Image.new(mode, (4, 4)), mode).mode == mode  # asked for as it is: kept


@pytest.fixture()
def folder(image_folder, tmp_path):
    root = tmp_path / 'train'
    shutil.copytree(os.path.join(image_folder, 'train'), root)
    bad = sorted((root / '1').glob('*.png'))[2]
    data = bad.read_bytes()
    bad.write_bytes(data[:len(data) // 2])
    return root, bad


def test_an_unreadable_file_is_named_never_replaced(folder):
    root, bad = folder
    dataset = CheckedImageDataset.of(ImageDataset(str(root)))
    index = [i for i in range(len(dataset)) if dataset.path(i) == str(bad)][0]
    with pytest.raises(UnreadableImageError, match=f'image {bad} \\(sample {index}\\) cannot be read: '):
        dataset[index]
    assert dataset[index - 1][1] == dataset.reader.samples[index - 1][1]  # its neighbours read as usual


def test_drop_unreadable_leaves_each_readable_image_once(folder):
    root, bad = folder
    dataset = CheckedImageDataset.of(ImageDataset(str(root)))
    paths = [dataset.path(i) for i in range(len(dataset))]
    removed = drop_unreadable(dataset, workers=0)
    assert [paths[i] for i, _ in removed] == [str(bad)] and str(bad) in removed[0][1]
    assert len(dataset) == 15 and [dataset.path(i) for i in range(15)] == [p for p in paths if p != str(bad)]
    assert [dataset[i][1] for i in range(15)] == [0] * 4 + [1] * 3 + [2] * 4 + [3] * 4
    assert drop_unreadable(dataset, workers=2) == []  # nothing left to drop, read by two worker processes


def test_readable_folders_pass(image_folder):
    check_readable_folders(image_folder, '--train-split train')  # no error
    with pytest.raises(UnreadableImageError, match='cannot be read'):
        check_readable_folders(os.path.join(image_folder, 'no-such-folder'), '--train-split x')
