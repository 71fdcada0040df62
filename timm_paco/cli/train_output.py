"""train.py's output folder (primary process): ``args.yaml``, ``class_counts.json``, timm's ``CheckpointSaver``
over the task's trainable module and state, wandb, and the push of the finished run to the Hub."""
import glob
import logging
import os
import shutil
from dataclasses import dataclass
from datetime import datetime
from typing import Dict, Optional

import yaml
from timm import utils
from timm.models import safe_model_name

from timm_paco.cli.errors import one_line
from timm_paco.cli.run_checkpoints import experiment_folder, newest_checkpoint
from timm_paco.cli.run_lock import lock_run_folder
from timm_paco.cli.usage import UsageError
from timm_paco.data import save_class_counts

__all__ = ['RUN_FILES', 'RunOutput', 'run_files', 'args_yaml', 'check_output_folder', 'create_run_output',
           'push_run_to_hub']

_logger = logging.getLogger('train')


@dataclass
class RunOutput:
    """The run's folder and checkpoint saver (both None on the other ranks of a distributed run), and what it
    records beside its checkpoints: ``args.yaml``, ``class_counts.json`` and, for a resumed run, the summary rows
    from ``start_epoch`` on dropped. These are written (and ``--overwrite``'s earlier run removed) with the run's
    first checkpoint (``record_epoch``), so a run that stops before one leaves the folder as it found it."""
    output_dir: Optional[str] = None
    saver: Optional[utils.CheckpointSaver] = None
    args: object = None
    class_counts: Optional[list] = None
    start_epoch: int = 0
    recorded: bool = False
    log_wandb: bool = False  # the epoch rows also go to wandb (--log-wandb, wandb installed)

    def summary_file(self) -> Optional[str]:
        return os.path.join(self.output_dir, 'summary.csv') if self.output_dir else None

    def _write_records(self) -> None:
        utils.trim_summary(self.summary_file(), self.start_epoch)  # a run resumed into its folder: rows after it go
        with open(os.path.join(self.output_dir, 'args.yaml'), 'w') as f:
            f.write(args_yaml(self.args))
        if self.class_counts is not None:
            save_class_counts(self.class_counts, self.output_dir)
        self.recorded = True

    def record_epoch(self, epoch: int, metric, train_metrics: Dict, eval_metrics: Optional[Dict], **summary_kwargs):
        """Write ``epoch``'s checkpoint (ranked by ``metric``), then the records if not yet written, then its
        summary row; returns the saver's best (metric, epoch). A failed write removes the saver's partial
        ``tmp.pth.tar`` and raises an OSError naming the file, the free space and the checkpoint to resume."""
        if not self.recorded:
            _clear_earlier_run(self.args, self.output_dir)
        try:
            best = self.saver.save_checkpoint(epoch, metric=metric)
        except (OSError, RuntimeError) as e:  # torch reports a failed write as a RuntimeError without the errno
            raise self._write_failed(os.path.join(self.output_dir, 'last.pth.tar'), epoch, e) from e
        try:
            if not self.recorded:
                self._write_records()
            utils.update_summary(epoch, train_metrics, eval_metrics, filename=self.summary_file(), **summary_kwargs)
        except OSError as e:
            raise self._write_failed(self.summary_file(), epoch, e) from e
        return best

    def _write_failed(self, path: str, epoch: int, error: Exception) -> OSError:
        tmp = os.path.join(self.output_dir, 'tmp.pth.tar')
        if os.path.exists(tmp):
            os.remove(tmp)  # the saver's partial file
        reason = (error.strerror if isinstance(error, OSError) and error.strerror else
                  str(error).split('] ', 1)[-1].strip(' .') or type(error).__name__)
        newest = newest_checkpoint(self.output_dir)
        resume = (f'resume with --resume {newest[0]} (epoch {newest[1]})' if newest else
                  'no checkpoint of this run was written')
        return OSError(f'--output {self.output_dir}: writing {path} for epoch {epoch} failed ({reason}; '
                       f'{_free_space(self.output_dir)} free on its disk); {resume}')


def _free_space(folder: str) -> str:
    free = shutil.disk_usage(folder).free
    for unit in ('B', 'KB', 'MB', 'GB'):
        if free < 1024:
            return f'{free:.0f} {unit}'
        free /= 1024
    return f'{free:.1f} TB'


# what a train.py run writes into its folder (glob patterns); the first seven are its results
RUN_FILES = ('last.pth.tar', 'model_best.pth.tar', 'checkpoint-*.pth.tar', 'recovery-*.pth.tar', 'tmp.pth.tar',
             'milestone-*.pth.tar', 'summary.csv', 'args.yaml', 'class_counts.json', 'train-batch-*.jpg')
_RESULT_FILES = RUN_FILES[:7]


def run_files(folder: str, patterns=RUN_FILES):
    """The files of an earlier run in ``folder`` (sorted): all it wrote, or those matching ``patterns``."""
    return sorted({p for pattern in patterns for p in glob.glob(os.path.join(folder, pattern))})


def _resumes_into(args, folder: str) -> bool:
    return bool(args.resume) and os.path.dirname(os.path.abspath(args.resume)) == os.path.abspath(folder)


def check_output_folder(args) -> None:
    """Take the ``--experiment`` folder's lock for this run (``run_lock``: a UsageError naming the running holder),
    then a UsageError when the folder holds a run this one would overwrite: not resumed from it (``--resume`` of a
    checkpoint inside it) and no ``--overwrite``. Checked before anything is read."""
    if not args.experiment or int(os.environ.get('RANK', '0')) != 0:  # before the process group exists
        return
    folder = experiment_folder(args)
    lock_run_folder(folder, f'--experiment {args.experiment}')
    existing = run_files(folder, _RESULT_FILES) if os.path.isdir(folder) else []  # a run that saved something
    if not existing or args.overwrite or _resumes_into(args, folder):
        return
    names = ', '.join(os.path.basename(p) for p in existing[:4]) + (' …' if len(existing) > 4 else '')
    newest = newest_checkpoint(folder)
    resume = f'resume it with --resume {newest[0]}, ' if newest else ''
    raise UsageError(f'--experiment {args.experiment}: {folder} already holds a run ({names}); {resume}start over '
                     f'with --overwrite, or choose another --experiment')


def _clear_earlier_run(args, output_dir: str) -> None:
    """``--overwrite``: the earlier run's files go (before this run's first checkpoint), so that none of its
    checkpoints passes for this run's."""
    if not args.overwrite or _resumes_into(args, output_dir):
        return
    for path in run_files(output_dir):
        os.remove(path)
        _logger.info(f'--overwrite: removed {path} of the earlier run')


def _plain(value):
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value if value is None or isinstance(value, (bool, int, float, str)) else str(value)


def args_yaml(args) -> str:
    """``args.yaml``: the flags as this run uses them (defaults resolved: task, lr, smoothing, device, and the
    values a resumed optimizer state keeps), loadable with ``-c``; ``--resume auto`` stays ``auto``, so the same
    command (or config) goes on from wherever the run is."""
    values = {k: _plain(v) for k, v in vars(args).items() if k != 'resume_auto'}
    if getattr(args, 'resume_auto', False):
        values['resume'] = 'auto'
    return yaml.safe_dump(values, default_flow_style=False)


def _experiment_name(args, data_config) -> str:
    return args.experiment or '-'.join([
        datetime.now().strftime('%Y%m%d-%H%M%S'), safe_model_name(args.model), str(data_config['input_size'][-1])])


def _init_wandb(args, exp_name: str) -> bool:
    """Whether metrics go to wandb: ``--log-wandb`` with wandb installed (a warning says so otherwise)."""
    try:
        import wandb
    except ImportError:
        _logger.warning('--log-wandb: wandb is not installed (pip install wandb); metrics are not sent to wandb.')
        return False
    wandb.init(project=args.wandb_project, name=exp_name, config=args, tags=args.wandb_tags,
               resume='must' if args.wandb_resume_id else None, id=args.wandb_resume_id or None)
    return True


def create_run_output(args, task, optimizer, loss_scaler, data_config, class_counts, decreasing: bool,
                      start_epoch: int) -> RunOutput:
    """On the primary process: the output folder and a ``CheckpointSaver`` ranking checkpoints by a ``decreasing``
    (or increasing) metric, with ``args.yaml`` (``args_yaml``) and ``class_counts.json`` to write with the first
    checkpoint of this run from ``start_epoch``; a resumed run of the same folder keeps its checkpoint history."""
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
    log_wandb = bool(args.log_wandb) and _init_wandb(args, exp_name)
    return RunOutput(output_dir, saver, args=args, class_counts=class_counts, start_epoch=start_epoch,
                     log_wandb=log_wandb)


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
    try:
        commit = push_checkpoint(checkpoint, args.push_to_hub, model_name=args.model, form='timm', ema=ema,
                                 private=args.hub_private, revision=args.hub_revision, license=args.hub_license)
    except Exception as e:  # noqa: BLE001  network, auth, Hub errors: the trained run stays where it is
        later = f'python -m timm_paco.hub push {checkpoint} {args.push_to_hub}' + (' --ema' if ema else '') + (
            f' --license {args.hub_license}' if args.hub_license else '')
        raise RuntimeError(f'--push-to-hub {args.push_to_hub}: the push failed ({one_line(e)}); the trained run is '
                           f'saved in {output_dir}: push it later with {later}') from e
    _logger.info(f'Pushed {checkpoint} to the Hub: {getattr(commit, "commit_url", commit)}')
