"""timm 1.0.31's behaviour changes that touch timm_paco: bfloat16 EMAs with stochastic rounding (the key encoder),
TypeError for unknown constructor arguments (train.py's model flags), ``reset_classifier()`` keeping the pooling
(cRT) and ``head_hidden_size`` as the pooled width (the projector)."""
import pytest
import timm
import torch

import timm_paco  # noqa: F401  registers resnet32_cifar
from timm_paco import train
from timm_paco.losses import PaCoLoss
from timm_paco.tasks import create_contrastive_module
from timm_paco.tasks.classifier_retrain import FrozenFeatures
from timm_paco.tasks.paco import PaCoTask

NUM_CLASSES = 4


def test_key_encoder_of_a_bfloat16_model_accumulates_its_updates():
    """A bfloat16 key encoder is timm's ModelEmaV3 in bfloat16: its updates of 0.01 · (model − key) are below half
    bfloat16's spacing at 4 (1/32), so rounding to nearest would never move it, but they accumulate through
    stochastic rounding, from a private random state (the global one is untouched). train.py still refuses it:
    checkpoints do not keep that state."""
    model = timm.create_model('resnet32_cifar', num_classes=NUM_CLASSES).to(torch.bfloat16)
    task = PaCoTask(model, PaCoLoss(NUM_CLASSES), momentum=0.99, queue_size=8)
    weight = dict(task.module.named_parameters())['backbone.fc.weight']
    key = dict(task.key_encoder.module.named_parameters())['backbone.fc.weight']
    with torch.no_grad():
        key.fill_(4.0)
        weight.fill_(5.0)
    rng = torch.get_rng_state()
    for _ in range(100):
        task.update_ema()
    exact = 5.0 - 0.99 ** 100  # 4.634: the float64 EMA; round-to-nearest would stay at 4
    assert key.dtype == torch.bfloat16 and abs(key.float().mean().item() - exact) < 0.05
    assert torch.equal(torch.get_rng_state(), rng)


def test_unknown_model_arguments_stop_train_py_with_one_line(image_folder, tmp_path, capsys):
    common = ['--data-dir', image_folder, '--num-classes', str(NUM_CLASSES), '--device', 'cpu', '--output',
              str(tmp_path), '--experiment', 'bad', '--epochs', '1']
    for extra, message in (
            (['--model', 'resnet32_cifar', '--model-kwargs', 'depthh=3'],
             "--model-kwargs depthh=…: model resnet32_cifar takes no 'depthh' argument"),
            (['--model', 'test_vit', '--drop-block', '0.1'],
             "--drop-block: model test_vit takes no 'drop_block_rate'")):
        with pytest.raises(SystemExit) as exit_info:
            train.main(common + extra)
        assert exit_info.value.code == 2 and message in capsys.readouterr().err.strip().splitlines()[-1]
        assert not (tmp_path / 'bad').exists()


def test_crt_and_the_projector_keep_the_models_pooling():
    """cRT re-initialises the classifier with ``reset_classifier(num_classes)``, which keeps a ``catavgmax``
    pooling (and its doubled width); the projector takes ``head_hidden_size``, the pooled width."""
    model = timm.create_model('resnet32_cifar', num_classes=NUM_CLASSES, global_pool='catavgmax')
    assert model.head_hidden_size == 2 * model.num_features
    frozen = FrozenFeatures(model, mode='crt')
    assert frozen.model.global_pool.pool_type == 'catavgmax'
    assert frozen.model.get_classifier().in_features == 2 * model.num_features
    assert frozen(torch.randn(2, 3, 32, 32)).shape == (2, NUM_CLASSES)
    module = create_contrastive_module(timm.create_model('resnet32_cifar', num_classes=NUM_CLASSES,
                                                         global_pool='catavgmax'), proj_dim=16)
    assert module.projector.in_dim == 2 * model.num_features
    logits, embeddings = module(torch.randn(2, 3, 32, 32))
    assert logits.shape == (2, NUM_CLASSES) and embeddings.shape == (2, 16)
