"""timm_paco.data.splits: a split's folder found strictly (synonyms, class-folder roots), torchvision split names."""
import pytest

from timm_paco.data.splits import SplitNotFoundError, is_folder_dataset, resolve_split_folder, split_source


def test_split_folders_and_synonyms(tmp_path):
    for name in ('train', 'val', 'notes'):
        (tmp_path / name).mkdir()
    assert resolve_split_folder(str(tmp_path), 'train') == str(tmp_path / 'train')
    assert resolve_split_folder(str(tmp_path), 'validation') == str(tmp_path / 'val')  # timm's synonyms
    assert resolve_split_folder(str(tmp_path), 'notes') == str(tmp_path / 'notes')  # any folder named as asked
    with pytest.raises(SplitNotFoundError, match=r"^--split test: .* has no test folder; its splits are train, val: "):
        resolve_split_folder(str(tmp_path), 'test')


def test_a_root_of_class_folders_serves_every_split(tmp_path):
    for name in ('0', '1'):
        (tmp_path / name).mkdir()
    assert resolve_split_folder(str(tmp_path), 'validation') == str(tmp_path)
    assert split_source('', str(tmp_path), 'train') == split_source('', str(tmp_path), 'validation')


def test_torchvision_splits(tmp_path):
    assert split_source('torch/cifar10', 'r', 'train') == 'r#train' != split_source('torch/cifar10', 'r', 'val')
    assert split_source('torch/cifar10', 'r', 'test') == split_source('torch/cifar10', 'r', 'validation')
    with pytest.raises(SplitNotFoundError, match=r'--val-split tset: torch/cifar10 has a train split'):
        split_source('torch/cifar10', 'r', 'tset', '--val-split')
    assert split_source('hfds/beans', 'r', 'anything') == 'r'  # the reader checks its own splits
    assert is_folder_dataset('') and is_folder_dataset('torch/image_folder') and not is_folder_dataset('wds/x')
