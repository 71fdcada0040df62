import os
import pkgutil

import pytest

from timm_paco.data.ood import (
    ALEXNET_ERRORS, IMAGENET_C_CORRUPTIONS, corruption_errors, imagenet_c_folders, imagenet_wnids,
    ood_class_map, parse_corruptions, subset_mask, subset_wnids,
)


@pytest.mark.parametrize('name,first_index', [('imagenet-r', 1), ('imagenet-a', 6)])
def test_subset_masks(name, first_index):
    mask, wnids = subset_mask(name), subset_wnids(name)
    assert len(mask) == 200 and len(set(mask)) == 200 and mask == sorted(mask)
    assert 0 <= mask[0] and mask[-1] < 1000 and mask[0] == first_index  # goldfish (R), stingray (A)
    all_wnids = imagenet_wnids()
    assert len(all_wnids) == 1000 and list(all_wnids) == sorted(all_wnids)
    assert [all_wnids[i] for i in mask] == list(wnids)
    # independent copy of the published index list shipped inside timm
    key = name.replace('-', '_')
    ref = pkgutil.get_data('timm.data', f'_info/{key}_indices.txt').decode().split()
    assert mask == [int(i) for i in ref]
    assert ood_class_map(name)[wnids[17]] == 17
    assert ood_class_map('imagenet-sketch')[all_wnids[999]] == 999


def test_imagenet_r_and_a_differ():
    assert set(subset_wnids('imagenet-r')) != set(subset_wnids('imagenet-a'))


def test_mce_hand_computed():
    # gaussian_noise errors sum 0.2+0.4+0.6+0.8+1.0 = 3.0; AlexNet sum 5*0.886428 = 4.43214
    # brightness errors sum 0.1*5 = 0.5;                     AlexNet sum 5*0.564592 = 2.82296
    errors = {'gaussian_noise': [0.2, 0.4, 0.6, 0.8, 1.0], 'brightness': [0.1] * 5}
    out = corruption_errors(errors, clean_error=0.05)
    assert out['ce']['gaussian_noise'] == pytest.approx(3.0 / 4.43214)   # 0.676874
    assert out['ce']['brightness'] == pytest.approx(0.5 / 2.82296)       # 0.177119
    assert out['mce'] == pytest.approx((0.676874 + 0.177119) / 2, abs=1e-6)
    # relative: (3.0 - 5*0.05) / (4.43214 - 5*0.4348) = 2.75 / 2.25814
    #           (0.5 - 0.25) / (2.82296 - 2.174) = 0.25 / 0.64896
    assert out['relative_ce']['gaussian_noise'] == pytest.approx(2.75 / 2.25814)
    assert out['relative_ce']['brightness'] == pytest.approx(0.25 / 0.64896)
    assert out['relative_mce'] == pytest.approx((1.217816 + 0.385232) / 2, abs=1e-6)
    assert 'relative_mce' not in corruption_errors(errors)


def test_alexnet_itself_scores_100_mce():
    errors = {c: [ALEXNET_ERRORS[c]] * 5 for c in IMAGENET_C_CORRUPTIONS}
    out = corruption_errors(errors, clean_error=0.4348)
    assert len(out['ce']) == 15 and out['mce'] == pytest.approx(1.0) and out['relative_mce'] == pytest.approx(1.0)


def test_corruption_errors_bad_input():
    with pytest.raises(ValueError, match='speckle_noise'):
        corruption_errors({'speckle_noise': [0.5]})
    with pytest.raises(ValueError, match='fractions'):
        corruption_errors({'fog': [50.0]})
    with pytest.raises(ValueError, match='clean_error'):
        corruption_errors({'fog': [0.5]}, clean_error=43.0)


def test_parse_corruptions():
    assert parse_corruptions('') == IMAGENET_C_CORRUPTIONS
    assert parse_corruptions('fog, snow') == ('fog', 'snow')
    with pytest.raises(ValueError, match='--ood-corruptions'):
        parse_corruptions('fog,rain')


def test_imagenet_c_folders_layouts(tmp_path):
    for s in (1, 2, 3, 4, 5):
        os.makedirs(tmp_path / 'fog' / str(s))
        os.makedirs(tmp_path / 'noise' / 'shot_noise' / str(s))
    found = imagenet_c_folders(str(tmp_path), ('fog', 'shot_noise'))
    assert [(c, s) for c, s, _ in found] == [(c, s) for c in ('fog', 'shot_noise') for s in (1, 2, 3, 4, 5)]
    assert found[5][2] == os.path.join(str(tmp_path), 'noise', 'shot_noise', '1')
    with pytest.raises(FileNotFoundError, match='gaussian_noise'):
        imagenet_c_folders(str(tmp_path))  # all 15 by default: no silent skipping
    os.rmdir(tmp_path / 'fog' / '3')
    with pytest.raises(FileNotFoundError, match=r'fog.3'):
        imagenet_c_folders(str(tmp_path), ('fog',))
    with pytest.raises(FileNotFoundError, match='does not exist'):
        imagenet_c_folders(str(tmp_path / 'nope'))
