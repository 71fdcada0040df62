"""The papers' recipes (timm_paco/recipes/*.yaml): every row is listed with its expected top-1, parses into
train.py's flags with exactly the file's values, and trains on the tiny Fashion-MNIST folder with only the data
(and device) flags overridden."""
import os
import subprocess
import sys

import pytest
import timm
import torch
import yaml

from timm_paco.recipes import get_recipe, list_recipes

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
from timm_paco import train  # noqa: E402
from timm_paco.cli.train_args import parse_args  # noqa: E402

RECIPES = list_recipes()
NAMES = [r.name for r in RECIPES]
# The rows of the seeds' results tables the recipes cover (issue 32): PaCo, GPaCo and DSCL.
EXPECTED = {
    'paco_resnet50_in1k': 79.3, 'paco_resnet101_in1k': 80.9, 'paco_resnet200_in1k': 81.8,
    'paco_resnet50_imagenet_lt': 57.0, 'paco_resnext50_imagenet_lt': 58.2, 'paco_resnext101_imagenet_lt': 60.0,
    'paco_resnet50_inat2018': 73.2, 'paco_resnet152_inat2018': 75.2, 'paco_resnet152_places_lt': 41.2,
    'paco_resnet32_cifar100_lt_imb100': 52.0, 'paco_resnet32_cifar100_lt_imb50': 56.0,
    'paco_resnet32_cifar100_lt_imb10': 64.2,
    'gpaco_resnet50_imagenet_lt': 58.5, 'gpaco_resnext50_imagenet_lt': 58.9, 'gpaco_resnext101_imagenet_lt': 60.8,
    'gpaco_resnet50_inat2018': 75.4, 'gpaco_resnet152_inat2018': 78.1, 'gpaco_resnet152_places_lt': 41.7,
    'gpaco_resnet50_in1k': 79.7, 'vit_base_patch16_gpaco_224_in1k': 84.0, 'vit_large_patch16_gpaco_224_in1k': 86.0,
    'dscl_resnet50_imagenet_lt_stage1': 57.7, 'dscl_resnet50_imagenet_lt_stage2': 57.7,
}
# What the test overrides: where the data is and how much of it (the tiny folder: 4 classes, 32-px images, one
# step of 16; no evaluation), the device, and what would need a download or a GPU.
NUM_CLASSES = 4


def _overrides(image_folder, tmp_path, recipe):
    data = dict(data_dir=image_folder, dataset='', train_split='train', val_split='', num_classes=NUM_CLASSES,
                img_size=32, batch_size=16, workers=0, imb_factor=None, mean=None, std=None)
    device = dict(device='cpu', amp=False, pretrained=False, output=str(tmp_path), experiment=recipe.name,
                  epochs=1, log_interval=1)
    model = recipe.flags['model']
    if model.startswith('vit_'):  # a fixed patch grid: built for the tiny images' size
        data['model_kwargs'] = {'img_size': 32, 'depth': 2}  # the recipe's width, two of its blocks: its flags are
        # what is tested, and ViT-L's 24 blocks (300M parameters) would take half a minute on the CPU
    elif 'resnet32' not in model:  # the ImageNet ResNets / ResNeXts: their widths, one block per stage
        data['model_kwargs'] = {'layers': [1, 1, 1, 1]}
    if recipe.flags.get('classifier_retrain'):  # stage 2 starts from a stage-1 model
        path = tmp_path / 'stage1.pth'
        torch.save(timm.create_model(model, num_classes=NUM_CLASSES, **data.get('model_kwargs', {})).state_dict(),
                   path)
        device['initial_checkpoint'] = str(path)
    return dict(data, **device)


def test_every_row_is_listed_with_its_expected_top1(capsys):
    assert {r.name: r.top1 for r in RECIPES} == EXPECTED
    from timm_paco.recipes.__main__ import main as recipes_main  # `list` in this process, `show` as a process
    capsys.readouterr()
    assert recipes_main(['list']) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(EXPECTED)
    for line, recipe in zip(lines, RECIPES):
        assert line.split()[:3] == [recipe.name, 'top-1', f'{recipe.top1:.1f}'] and line.endswith(recipe.path)
        assert recipe.source.split(' ')[0] in line
    for recipe in RECIPES:  # the source is a script of the authors' repositories, pinned to a commit
        assert recipe.source.endswith(('Parametric-Contrastive-Learning@fe56535)', 'SY-Xuan/DSCL@72c823b)'))
        assert recipe.gpus >= 1 and recipe.batch_per_gpu >= 1
    proc = subprocess.run([sys.executable, '-m', 'timm_paco.recipes', 'show', 'paco_resnet50_imagenet_lt'],
                          capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0 and yaml.safe_load(proc.stdout)['recipe']['top1'] == 57.0


@pytest.mark.parametrize('name', NAMES)
def test_recipe_parses_into_its_values(name):
    recipe = get_recipe(name)
    _, by_name = parse_args(['--recipe', name])
    _, by_file = parse_args(['-c', recipe.path])
    assert vars(by_name) == vars(by_file)
    for key, value in recipe.flags.items():
        got = getattr(by_name, key)
        assert (list(got) if isinstance(got, tuple) else got) == value, key
    assert by_name.lr is None and by_name.lr_base > 0  # the linear scaling rule decides the rate
    _, overridden = parse_args(['--recipe', name, '-b', '3'])
    assert overridden.batch_size == 3 and overridden.model == recipe.flags['model']


def test_unknown_recipe_is_one_line_naming_the_flag(capsys):
    with pytest.raises(SystemExit) as info:
        parse_args(['--recipe', 'paco_resnet50_imagnet_lt'])
    err = capsys.readouterr().err
    assert info.value.code == 2 and "--recipe recipe 'paco_resnet50_imagnet_lt': no such recipe; did you mean " \
                                    "paco_resnet50_imagenet_lt" in err


@pytest.mark.parametrize('name', NAMES)
def test_recipe_trains_on_tiny_data(name, image_folder, tmp_path):
    recipe = get_recipe(name)
    config = dict(recipe.flags, **_overrides(image_folder, tmp_path, recipe))
    path = tmp_path / 'config.yaml'
    path.write_text(yaml.safe_dump(config))
    train.main(['-c', str(path)])
    checkpoint = torch.load(tmp_path / name / 'last.pth.tar', map_location='cpu', weights_only=False)
    args = checkpoint['args']
    for key in ('task', 'opt', 'weight_decay', 'sched', 'paco_views', 'view_forward', 'wd_bias_and_norm'):
        if key in recipe.flags:
            assert getattr(args, key) == recipe.flags[key], key
    assert torch.isfinite(torch.stack([t.float().sum() for t in checkpoint['state_dict'].values()])).all()


def test_docs_table_is_the_recipes():
    from timm_paco.recipes.__main__ import markdown_table
    with open(os.path.join(REPO, 'docs', 'recipes.md')) as f:
        assert markdown_table() in f.read()  # regenerate with python -m timm_paco.recipes table
