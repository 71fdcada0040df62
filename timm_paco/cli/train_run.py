"""``TrainRun``: everything one training run's loop needs (task, optimiser, loaders, precision, schedule,
output), built once by train.py and read by the epoch functions."""
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Tuple

import torch

from timm_paco.cli.train_output import RunOutput
from timm_paco.finite import check_finite_state

__all__ = ['TrainRun']


@dataclass
class TrainRun:
    """``args``: train.py's namespace; ``amp_autocast``: a factory of the forward's autocast context;
    ``loss_scaler``: timm's ``NativeScaler`` (float16 AMP on CUDA) or None; ``batch_size_reference``: the batch
    size the loss scale of ``--train-img-sizes`` batches is relative to; ``eval_metric``: what ranks checkpoints
    and feeds plateau schedules (``loss`` without a validation loader); ``start_epoch`` .. ``num_epochs - 1``:
    the epochs to run; ``best``: the saver's best (metric, epoch)."""
    args: Any
    task: Any
    optimizer: torch.optim.Optimizer
    device: torch.device
    loader_train: Any
    loader_eval: Any = None
    amp_autocast: Callable = suppress
    loss_scaler: Any = None
    model_dtype: Optional[torch.dtype] = None
    mixup_fn: Optional[Callable] = None
    lr_scheduler: Any = None
    batch_size_reference: float = 1.0
    eval_metric: str = 'loss'
    output: RunOutput = field(default_factory=RunOutput)
    start_epoch: int = 0
    num_epochs: int = 0
    best: Tuple[Optional[float], Optional[int]] = (None, None)  # (metric, epoch) of the best checkpoint so far

    @property
    def distributed(self) -> bool:
        return bool(self.args.distributed)

    def mean_lr(self) -> float:
        lrs = [group['lr'] for group in self.optimizer.param_groups]
        return sum(lrs) / len(lrs)

    def check_savable(self, when: str) -> None:
        """NonFiniteError when the trainable module or the task state (key encoder, queue) is not finite: a
        finite loss can still overflow the weights in its update; such a model is never saved."""
        check_finite_state(self.task.get_trainable_module().state_dict(), f'the model at {when}')
        check_finite_state(self.task.get_task_state(), f'the task state at {when}')
