"""timm_paco.tasks: ``timm.task.TrainingTask`` subclasses for PaCo, GPaCo, DSCL and the CE baselines (the methods
of ``timm_paco.methods`` build them: ``timm_paco.methods.create_task``).

A task maps a view-major batch ``(input [V·B, C, H, W], target [B])`` to timm's task dict ``{'loss',
'output' (view-0 logits [B, C]), named loss parts}``.
"""
from ._base import VIEW_FORWARDS, ViewTask
from ._contrastive import ContrastiveTask
from .contrastive_module import ContrastiveModule, create_contrastive_module, is_transformer_like
from .projector import PROJ_TYPES, Projector
from .projector_file import PROJECTOR_FILE, attach_projector, load_projector, projector_args, save_projector
from ._distributed import gather_rows
from .classification import MultiViewClassificationTask
from .classifier_retrain import RETRAIN_MODES, ClassifierRetrainTask, FrozenFeatures
from .ldam import CosineClassifier, LDAMTask
from .gpaco import GPACO_QUEUE_SIZE, GPaCoTask
from .paco import PaCoTask
from .dscl import DSCLTask
