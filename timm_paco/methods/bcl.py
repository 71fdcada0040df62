"""BCL (Zhu et al., CVPR 2022): balanced contrastive learning on any timm model.

Three views per image (``randcls_sim_sim``, the authors' sim-sim recipe), all through the model in one forward
(the authors' BatchNorm batch): view 0's logits train the classifier with logit-adjusted cross-entropy; views 1
and 2 go through the projector (Linear-BN-ReLU-Linear to 1024, the authors' head) into the balanced contrastive
loss, whose contrast set also holds one prototype per class: the classifier's weight rows through a second MLP
of the same layout (the authors' ``head_fc``), so the contrastive term trains the classifier too. Loss:
``CE(logits + log p) + 0.35 · balanced contrastive (T = 0.07)`` (``timm_paco.losses.bcl``).

Where it differs from the authors' code: the classifier is the timm model's own (theirs a cosine classifier of
scale 30), so BCL runs on any timm model with a linear head.
"""
from typing import Dict, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.layers import convert_sync_batchnorm
from timm.utils import unwrap_model

from timm_paco.arg_types import non_negative_float, positive_float
from timm_paco.losses.bcl import BCLLoss
from timm_paco.tasks import ContrastiveModule, ContrastiveTask, Projector, create_contrastive_module
from timm_paco.tasks.contrastive_module import place_like
from timm_paco.tasks._distributed import gather_rows

from .method import Method, MethodFlag, Paper, Quickstart, TaskContext, given
from .registry import register_method

__all__ = ['BCL', 'BCLModule', 'BCLTask']

BCL_VIEWS = 'randcls_sim_sim'  # view 0 for the classifier, views 1 and 2 for the contrastive term
BCL_PROJ_DIM = 1024  # the authors' feat_dim

BCL_LAMBDA = MethodFlag('--bcl-lambda', 'contrast_weight', dict(
    type=non_negative_float, default=None,
    help='bcl: weight lambda of the balanced contrastive loss (default: 0.35, the authors\')'))
BCL_TEMPERATURE = MethodFlag('--bcl-temperature', 'temperature', dict(
    type=positive_float, default=None, help='bcl: temperature of the balanced contrastive loss (default: 0.07)'))


class BCLModule(ContrastiveModule):
    """A timm classifier, the projector and the class-prototype MLP: ``x [N, C, H, W] -> (logits [N, classes],
    embeddings [N, D], centres [classes, D])``, centres = L2-normalised ``centre_projector(classifier weight)``."""

    def __init__(self, model: nn.Module, projector: Projector, centre_projector: Projector):
        super().__init__(model, projector)
        classifier = model.get_classifier()
        if not isinstance(classifier, nn.Linear):
            raise ValueError(f'model {type(model).__name__}: bcl makes its class prototypes from a linear '
                             f'classifier\'s weight rows; get_classifier() is {type(classifier).__name__}')
        self.centre_projector = centre_projector

    def centres(self) -> torch.Tensor:
        out = self.centre_projector(self.backbone.get_classifier().weight)
        return F.normalize(out.float() if out.dtype in (torch.float16, torch.bfloat16) else out, dim=1)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        logits, embeddings = super().forward(x)
        return logits, embeddings, self.centres()


def _create_module(model: nn.Module, projector: Dict) -> BCLModule:
    plain = create_contrastive_module(
        model, **{'proj_dim': BCL_PROJ_DIM, 'proj_type': 'mlp', **projector})
    first = plain.projector
    centre = place_like(Projector(**first.config), model)  # the same layout, its own weights
    if any(isinstance(m, nn.SyncBatchNorm) for m in model.modules()):
        centre = convert_sync_batchnorm(centre)
    return BCLModule(model, first, centre)


class BCLTask(ContrastiveTask):
    """``{'loss', 'output' (view 0's logits [B, C]), 'loss_ce', 'loss_contrast'}`` of a view-major batch of
    ``num_views`` views: view 0 classified, views 1.. contrasted. The class-prototype MLP's weights are the task
    state ``centre_projector``."""

    def __init__(self, model: nn.Module, criterion: BCLLoss, num_views: int = 3, projector: Optional[Dict] = None,
                 view_forward: str = 'joint', device=None, dtype=None, verbose: bool = True):
        if num_views < 2:
            raise ValueError(f'num_views: bcl classifies view 0 and contrasts the others, so it takes at least 2 '
                             f'views per image, got {num_views}')
        module = model if isinstance(model, BCLModule) else _create_module(model, projector or {})
        super().__init__(module, criterion, num_views=num_views, view_forward=view_forward, device=device,
                         dtype=dtype, verbose=verbose)

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> Dict[str, torch.Tensor]:
        batch_size = self.batch_size(input, target)
        logits, embeddings, centres = self.encode_views(input, batch_size)
        contrastive = embeddings[batch_size:]  # views 1.. (view-major)
        gathered = torch.cat([gather_rows(v, grad=True) for v in contrastive.split(batch_size)])
        parts = self.criterion.loss_parts(gather_rows(logits[:batch_size], grad=True), gathered,
                                          gather_rows(target), centres[:self.criterion.num_classes])
        return {'loss': parts['loss'], 'output': logits[:batch_size], 'loss_ce': parts['loss_ce'],
                'loss_contrast': parts['loss_contrast']}

    def own_state(self) -> Dict:
        return {'centre_projector': unwrap_model(self.trainable_module).centre_projector.state_dict()}

    def load_own_state(self, state: Optional[Dict], strict: bool) -> None:
        saved = (state or {}).get('centre_projector')
        if saved is None:
            if strict:
                raise ValueError('checkpoint holds no bcl class-prototype MLP (task_state centre_projector): it '
                                 'was not trained with --task bcl; use --initial-checkpoint to start from its weights')
            return
        self.module.centre_projector.load_state_dict(saved, strict=strict)


def _build(context: TaskContext, contrast_weight=None, temperature=None):
    criterion = BCLLoss(context.num_classes, context.counts('bcl'), prior_tau=context.prior_tau,
                        **given(contrast_weight=contrast_weight, temperature=temperature),
                        **context.smoothing_kwargs())
    return BCLTask(context.model, criterion, num_views=context.views(3), projector=context.projector,
                   **context.common())


BCL = register_method(Method(
    name='bcl', summary='BCL (Balanced Contrastive Learning)', label='BCL', build=_build,
    paper=Paper(
        'Zhu et al., "Balanced Contrastive Learning for Long-Tailed Visual Recognition", CVPR 2022',
        '@inproceedings{zhu2022balanced,\n  title={Balanced Contrastive Learning for Long-Tailed Visual '
        'Recognition},\n  author={Zhu, Jianggang and Wang, Zheng and Chen, Jingjing and Chen, Yi-Ping Phoebe and '
        'Jiang, Yu-Gang},\n  booktitle={Proceedings of the IEEE/CVF Conference on Computer Vision and Pattern '
        'Recognition (CVPR)},\n  year={2022}\n}',
        code='https://github.com/FlamieZhu/Balanced-Contrastive-Learning'),
    flags=(BCL_LAMBDA, BCL_TEMPERATURE), views=BCL_VIEWS, view_forward='joint', prior='always', projector=True,
    tags=('bcl', 'contrastive-learning'),
    quickstart=Quickstart(model='resnet32_cifar', flags=lambda budget: ['--paco-views', BCL_VIEWS])))
