"""Long-tailed data on real Fashion-MNIST: imbalance profile, class counts, split lists and their errors."""
import json
import os

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms

from timm_paco.data import (
    CLASS_COUNTS_FILE, ImbalancedDataset, SplitListDataset, count_classes, create_paco_dataset, dataset_targets,
    load_class_counts, save_class_counts,
)


@pytest.fixture(scope='module')
def fmnist_train(fmnist_root):
    return create_paco_dataset('torch/fashion_mnist', root=fmnist_root, split='train')


def test_long_tail_profile_counts_and_seeds(fmnist_root, fmnist_train):
    lt = create_paco_dataset('torch/fashion_mnist', root=fmnist_root, split='train', is_training=True,
                             imb_factor=0.01, imb_seed=0)
    expected = [6000, 3596, 2156, 1292, 774, 464, 278, 166, 100, 60]  # int(6000 * 0.01 ** (c / 9))
    assert lt.class_counts == expected
    assert count_classes(lt) == expected
    # the kept samples really have those labels in the base dataset
    base_labels = fmnist_train.dataset.targets.numpy()
    assert np.bincount(base_labels[lt.indices], minlength=10).tolist() == expected
    assert lt.targets == base_labels[lt.indices].tolist()
    assert len(set(lt.indices)) == len(lt) == sum(expected)

    again = ImbalancedDataset(fmnist_train, 0.01, seed=0)
    other = ImbalancedDataset(fmnist_train, 0.01, seed=1)
    assert again.indices == lt.indices
    assert other.class_counts == expected and other.indices != lt.indices

    # evaluation split is not subsampled
    val = create_paco_dataset('torch/fashion_mnist', root=fmnist_root, split='validation', imb_factor=0.01)
    assert count_classes(val) == [1000] * 10


def test_imbalanced_dataset_images_and_transform(fmnist_train):
    lt = ImbalancedDataset(fmnist_train, 0.1, seed=3)
    img, target = lt[len(lt) - 1]
    k = lt.indices[-1]
    assert target == int(fmnist_train.dataset.targets[k]) == 9
    assert img.mode == 'RGB' and img.size == (28, 28)
    rgb = np.array(img)
    assert (rgb == fmnist_train.dataset.data[k].numpy()[..., None]).all()  # grey copied into R, G, B
    lt.transform = transforms.PILToTensor()
    try:
        x, _ = lt[len(lt) - 1]
        assert x.shape == (3, 28, 28) and torch.equal(x[1], fmnist_train.dataset.data[k])
    finally:
        lt.transform = None


@pytest.mark.parametrize('factor', [0, -0.5, 1.5, float('nan')])
def test_bad_imb_factor(fmnist_root, fmnist_train, factor):
    with pytest.raises(ValueError, match='--imb-factor'):
        create_paco_dataset('torch/fashion_mnist', root=fmnist_root, split='train', is_training=True,
                            imb_factor=factor)
    with pytest.raises(ValueError, match='--imb-factor'):
        ImbalancedDataset(fmnist_train, factor)


def test_class_counts_saved_and_read_back(tmp_path, fmnist_train):
    counts = ImbalancedDataset(fmnist_train, 0.02, seed=0).class_counts
    filename = save_class_counts(counts, str(tmp_path / 'run'))
    assert filename == str(tmp_path / 'run' / CLASS_COUNTS_FILE)
    with open(filename) as f:
        assert json.load(f) == {'num_classes': 10, 'class_counts': counts}
    assert load_class_counts(str(tmp_path / 'run')) == counts
    assert load_class_counts(filename) == counts
    assert load_class_counts(str(tmp_path / 'run' / 'model_best.pth.tar')) == counts  # beside a checkpoint

    bad = tmp_path / 'bad.json'
    bad.write_text(json.dumps({'num_classes': 3, 'class_counts': [5, 2]}))
    with pytest.raises(ValueError, match='bad.json'):
        load_class_counts(str(bad))
    with pytest.raises(FileNotFoundError, match='class_counts.json'):
        load_class_counts(str(tmp_path / 'empty_dir_ckpt.pth'))


def test_counts_need_labels():
    with pytest.raises(ValueError, match='exposes no labels'):
        count_classes([(torch.zeros(1), 0)])


def _write_pngs(fmnist_train, folder, indices):
    """Save Fashion-MNIST images as PNGs in per-class folders; return [(relative path, label, pixels)]."""
    rows = []
    for k in indices:
        pixels = fmnist_train.dataset.data[k].numpy()
        label = int(fmnist_train.dataset.targets[k])
        rel = os.path.join(f'class_{label}', f'img_{k}.png')
        os.makedirs(os.path.join(folder, f'class_{label}'), exist_ok=True)
        Image.fromarray(pixels).save(os.path.join(folder, rel))
        rows.append((rel, label, pixels))
    return rows


@pytest.fixture(scope='module')
def png_root(tmp_path_factory, fmnist_train):
    root = str(tmp_path_factory.mktemp('lt_images'))
    rows = _write_pngs(fmnist_train, root, range(20))
    return root, rows


def _write_list(path, lines):
    with open(path, 'w') as f:
        f.write('\n'.join(lines) + '\n')
    return str(path)


def test_split_list_round_trip(tmp_path, png_root):
    root, rows = png_root
    train = _write_list(tmp_path / 'Tiny_LT_train.txt', [f'{r} {y}' for r, y, _ in rows[:12]])
    _write_list(tmp_path / 'Tiny_LT_test.txt', [f'{r} {y}' for r, y, _ in rows[12:]])

    ds = create_paco_dataset('lt:' + train, root=root, split='train', is_training=True, num_classes=10)
    assert isinstance(ds, SplitListDataset) and len(ds) == 12
    assert ds.targets == [y for _, y, _ in rows[:12]] == dataset_targets(ds)
    assert ds.filenames()[:2] == [rows[0][0], rows[1][0]]
    for i in (0, 5, 11):
        img, target = ds[i]
        assert target == rows[i][1] and img.mode == 'RGB'
        assert (np.array(img) == rows[i][2][..., None]).all()

    grey = create_paco_dataset('lt:' + train, root=root, split='train', input_img_mode='L')
    assert np.array_equal(np.array(grey[3][0]), rows[3][2])

    # a byte-order mark is not part of the first path; a line listed twice is a repeated sample
    bom = tmp_path / 'Bom_train.txt'
    bom.write_text('\ufeff' + '\n'.join([f'{r} {y}' for r, y, _ in rows[:3]] + [f'{rows[0][0]} {rows[0][1]}']) + '\n',
                   encoding='utf-8')
    repeated = create_paco_dataset('lt:' + str(bom), root=root, split='train', num_classes=10)
    assert repeated.filenames() == [r for r, _, _ in rows[:3]] + [rows[0][0]]

    # the split picks the sibling list: <stem>_train.txt -> <stem>_test.txt
    test = create_paco_dataset('lt:' + train, root=root, split='test')
    assert test.targets == [y for _, y, _ in rows[12:]]
    assert os.path.basename(test.list_file) == 'Tiny_LT_test.txt'
    assert count_classes(test, num_classes=10) == np.bincount(test.targets, minlength=10).tolist()
    # a list named directly is read as given, whatever the split (validate.py's default is 'validation')
    named = create_paco_dataset('lt:' + str(tmp_path / 'Tiny_LT_test.txt'), root=root, split='validation')
    assert os.path.basename(named.list_file) == 'Tiny_LT_test.txt' and named.targets == test.targets


def test_folder_dataset_counts(tmp_path, png_root):
    root, rows = png_root
    ds = create_paco_dataset('', root=root, split='train')  # timm ImageDataset over class folders
    per_label = np.bincount([y for _, y, _ in rows], minlength=10)
    assert count_classes(ds) == [int(n) for n in per_label if n]  # timm indexes the class folders present


@pytest.mark.parametrize('bad_line,line_no,error,message', [
    ('class_0/missing.png 0', 3, FileNotFoundError, 'missing.png not found'),
    ('{path} 10', 2, ValueError, 'label 10 out of range'),
    ('{path} -1', 2, ValueError, 'label -1 out of range'),
    ('{path}', 3, ValueError, 'expected "relative/path label"'),
    ('{path} seven', 1, ValueError, "label 'seven' is not an integer"),
    ('{path} 5', 3, ValueError, r'has label 5, but line 1 gives it 9'),  # one image (an ankle boot), two labels
])
def test_split_list_errors_name_file_and_line(tmp_path, png_root, bad_line, line_no, error, message):
    root, rows = png_root
    lines = [f'{r} {y}' for r, y, _ in rows[:4]]
    lines[line_no - 1] = bad_line.format(path=rows[0][0])
    list_file = _write_list(tmp_path / 'Bad_train.txt', lines)
    with pytest.raises(error, match=message) as info:
        create_paco_dataset('lt:' + list_file, root=root, split='train', num_classes=10)
    assert f'{list_file}:{line_no}:' in str(info.value)


def test_split_list_missing_root_or_list(tmp_path, png_root):
    root, rows = png_root
    list_file = _write_list(tmp_path / 'Ok_train.txt', [f'{r} {y}' for r, y, _ in rows[:2]])
    missing_root = str(tmp_path / 'no_such_root')
    with pytest.raises(FileNotFoundError, match='no_such_root'):
        create_paco_dataset('lt:' + list_file, root=missing_root, split='train')
    with pytest.raises(FileNotFoundError, match='Ok_val.txt'):
        create_paco_dataset('lt:' + list_file, root=root, split='validation')


def test_undecodable_image_stops_with_its_path(tmp_path):
    root = tmp_path / 'images'
    root.mkdir()
    (root / 'broken.png').write_bytes(b'not an image')
    list_file = _write_list(tmp_path / 'Broken_train.txt', ['broken.png 0'])
    ds = create_paco_dataset('lt:' + list_file, root=str(root), split='train')
    with pytest.raises(OSError, match='broken.png'):
        ds[0]


def test_timm_create_loader_sets_transform_through_wrappers(fmnist_train):
    from timm.data import create_loader
    lt = ImbalancedDataset(fmnist_train, 0.01, seed=0)
    try:
        loader = create_loader(lt, input_size=(3, 28, 28), batch_size=4, is_training=True, use_prefetcher=False,
                               num_workers=0)
        x, y = next(iter(loader))
        assert x.shape == (4, 3, 28, 28) and x.dtype == torch.float32 and y.shape == (4,)
    finally:
        lt.transform = None
