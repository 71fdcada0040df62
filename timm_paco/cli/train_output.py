"""train.py's output folder (primary process): ``args.yaml``, ``class_counts.json``, timm's ``CheckpointSaver``
over the task's trainable module and state, wandb, and the push of the finished run to the Hub."""
import logging
import os
from dataclasses import dataclass
from datetime import datetime
from typing import Optional

from timm import utils
from timm.models import safe_model_name

from timm_paco.data import save_class_counts

__all__ = ['RunOutput', 'create_run_output', 'push_run_to_hub']

_logger = logging.getLogger('train')


@dataclass
class RunOutput:
    """The run's folder and checkpoint saver (both None on the other ranks of a distributed run)."""
    output_dir: Optional[str] = None
    saver: Optional[utils.CheckpointSaver] = None

    def summary_file(self) -> Optional[str]:
        return os.path.join(self.output_dir, 'summary.csv') if self.output_dir else None


def _experiment_name(args, data_config) -> str:
    return args.experiment or '-'.join([
        datetime.now().strftime('%Y%m%d-%H%M%S'), safe_model_name(args.model), str(data_config['input_size'][-1])])


def _init_wandb(args, exp_name: str) -> None:
    try:
        import wandb
    except ImportError:
        _logger.warning('--log-wandb: wandb is not installed (pip install wandb); metrics are not sent to wandb.')
        args.log_wandb = False
        return
    wandb.init(project=args.wandb_project, name=exp_name, config=args, tags=args.wandb_tags,
               resume='must' if args.wandb_resume_id else None, id=args.wandb_resume_id or None)


def create_run_output(args, args_text: str, task, optimizer, loss_scaler, data_config, class_counts,
                      decreasing: bool) -> RunOutput:
    """On the primary process: the output folder with ``args.yaml`` (and ``class_counts.json``) and a
    ``CheckpointSaver`` ranking checkpoints by a ``decreasing`` (or increasing) metric; a resumed run of the same
    folder keeps its checkpoint history."""
    if not utils.is_primary(args):
        return RunOutput()
    exp_name = _experiment_name(args, data_config)
    output_dir = utils.get_outdir(args.output if args.output else './output/train', exp_name)
    saver = utils.CheckpointSaver(
        model=task.get_trainable_module(), optimizer=optimizer, args=args, amp_scaler=loss_scaler,
        checkpoint_dir=output_dir, recovery_dir=output_dir, decreasing=decreasing,
        max_history=args.checkpoint_hist, task=task)
    if args.resume and os.path.dirname(os.path.abspath(args.resume)) == os.path.abspath(output_dir):
        saver.load_state_dict_from_checkpoint(args.resume)
    with open(os.path.join(output_dir, 'args.yaml'), 'w') as f:
        f.write(args_text)
    if class_counts is not None:
        save_class_counts(class_counts, output_dir)
    if args.log_wandb:
        _init_wandb(args, exp_name)
    return RunOutput(output_dir, saver)


def push_run_to_hub(args, output_dir: str) -> None:
    """Upload the best (else last) checkpoint with ``timm_paco.hub.push_checkpoint``.

    With ``--model-ema`` (evaluated, not ``--model-ema-force-cpu``) the EMA weights go up, as they are the ones
    the best checkpoint was chosen by. The export is the stock timm form (``resnet50`` for ``paco_resnet50``),
    which plain timm loads, with the training projector beside it in ``projector.safetensors``.
    """
    from timm_paco.hub import push_checkpoint
    checkpoint = os.path.join(output_dir, 'model_best.pth.tar')
    if not os.path.isfile(checkpoint):
        checkpoint = os.path.join(output_dir, 'last.pth.tar')
    ema = args.model_ema and not args.model_ema_force_cpu  # the EMA was evaluated and chose the best checkpoint
    commit = push_checkpoint(checkpoint, args.push_to_hub, model_name=args.model, form='timm', ema=ema,
                             private=args.hub_private, revision=args.hub_revision)
    _logger.info(f'Pushed {checkpoint} to the Hub: {getattr(commit, "commit_url", commit)}')
