"""train.py's refusals and warnings: flag values and combinations that cannot work (``UsageError``, before any
data is read or file written) and flags a run takes without fully honouring them (warnings)."""
from typing import Dict, List, Tuple

from timm.optim import get_optimizer_info

from timm_paco.arg_types import repeated
from timm_paco.cli.inputs import check_data_dir, check_device, check_model_name
from timm_paco.cli.train_args import TIMM_VIEWS
from timm_paco.cli.train_loss import check_loss_flags
from timm_paco.cli.train_views import ViewPlan
from timm_paco.cli.usage import UsageError
from timm_paco.data import check_imb_factor, check_patch_args, parse_view_recipe
from timm_paco.methods import Method, get_method, list_methods
from timm_paco.tasks.patch_teacher import check_patch_model as check_feature_map

__all__ = ['method_flags', 'check_inputs', 'check_values', 'check_combinations', 'check_patch_model',
           'unused_task_flags', 'flag_warnings']


def method_flags() -> Dict[str, Tuple[str, ...]]:
    """Each method-owned flag's dest and the methods that read it (``--paco-logit-adjust``: those whose prior
    follows it)."""
    readers: Dict[str, List[str]] = {}
    for name in list_methods():
        method = get_method(name)
        for flag in method.flags:
            readers.setdefault(flag.dest, []).append(name)
        if method.prior == 'logit-adjust':
            readers.setdefault('paco_logit_adjust', []).append(name)
    return {dest: tuple(names) for dest, names in readers.items()}


def _is_second_order(opt: str) -> bool:
    """Whether timm's ``--opt`` (e.g. ``adahessian``, ``lookahead_adahessian``) needs a double backward."""
    try:
        return get_optimizer_info(opt.lower().split('_')[-1]).second_order
    except ValueError:  # an unknown name: timm's own error comes when the optimiser is built
        return False


def unused_task_flags(parser, args, task: str) -> List[str]:
    """The method flags given (not at their defaults) that ``task`` does not read."""
    return ['--' + dest.replace('_', '-') for dest, tasks in method_flags().items()
            if task not in tasks and getattr(args, dest) != parser.get_default(dest)]


def flag_warnings(parser, args, task: str) -> List[str]:
    """Warnings about flags the run takes but does not fully honour."""
    warnings = []
    unused = unused_task_flags(parser, args, task)
    if unused:
        warnings.append(f'--task {task} does not use {", ".join(unused)}; ignored')
    if args.use_multi_epochs_loader:
        warnings.append('--use-multi-epochs-loader keeps its workers across epochs, so they are not reseeded each '
                        'epoch: a resumed run does not repeat the augmentations of an unbroken one')
    return warnings


def check_values(args) -> None:
    """UsageError on flag values that are wrong whatever the model and task."""
    try:
        if args.imb_factor is not None:
            check_imb_factor(args.imb_factor)
        if args.paco_views not in (None, TIMM_VIEWS):
            parse_view_recipe(args.paco_views, arg_name='--paco-views')
        check_patch_args(args.pbsd_patches, args.pbsd_patch_size, args.pbsd_scale)
    except ValueError as e:
        raise UsageError(str(e)) from None
    retrain = args.classifier_retrain
    if retrain and not args.initial_checkpoint:
        raise UsageError(f'--classifier-retrain {retrain} trains the classifier of a stage-1 model: give that model '
                         f'with --initial-checkpoint STAGE1.pth.tar')
    if retrain and args.task is not None and not get_method(args.task).second_stage:
        second = [n for n in list_methods() if get_method(n).second_stage]
        raise UsageError(f'--classifier-retrain {retrain}: the second stage trains the classifier with --task '
                         f'{" / ".join(second)}, not {args.task} (the stage-1 checkpoint may come from any task)')
    _check_epoch_marks(args)


def _check_epoch_marks(args) -> None:
    """``--stop-epoch`` and ``--save-epochs`` count completed epochs of the ``--epochs`` schedule."""
    if args.stop_epoch is not None and args.stop_epoch > args.epochs:
        raise UsageError(f'--stop-epoch {args.stop_epoch}: the run has --epochs {args.epochs}; stop at most there')
    marks = args.save_epochs or ()
    late = [n for n in marks if n > args.epochs]
    if late:
        raise UsageError(f'--save-epochs {late[0]}: the run has --epochs {args.epochs} (completed epoch counts 1 to '
                         f'{args.epochs})')
    twice = repeated(marks)
    if twice:
        raise UsageError(f'--save-epochs: {twice[0]} given more than once')
    if args.resume == 'auto' and not args.experiment:
        raise UsageError('--resume auto: resumes in the --experiment folder; name it with --experiment NAME')


def check_inputs(args) -> None:
    """UsageError on a device, model or data folder that is not there."""
    check_device(args.device)
    check_model_name(args.model)
    check_data_dir(args.data_dir or args.data, args.dataset, args.dataset_download)


def _check_unsupported(args) -> None:
    """timm train.py flags that no timm_paco task supports."""
    if args.naflex_loader:
        raise UsageError('--naflex-loader: NaFlex patch batches are not supported by the timm_paco tasks')
    if args.kd_model_name is not None:
        raise UsageError('--kd-model-name selects timm\'s distillation tasks, which do not combine with --task; '
                         'use timm\'s train.py for distillation')
    if args.aug_splits or args.loss == 'jsd' or args.split_bn:
        raise UsageError('--aug-splits / --loss jsd (--jsd-loss) / --split-bn (AugMix splits) do not combine with '
                         'the view batches of the timm_paco tasks; use --paco-views for several views per image')
    if args.tta > 1:
        raise UsageError(f'--tta {args.tta}: the eval loader makes no augmented copies to fold; evaluate '
                         f'test-time augmentation separately')


def _check_task(args, method: Method, views: ViewPlan) -> None:
    """Flags that do not combine with ``method`` and its views."""
    task = method.name
    mixup = args.mixup > 0 or args.cutmix > 0 or args.cutmix_minmax is not None
    if mixup and (not method.soft_targets or not views.timm_views):
        soft = ' / '.join(n for n in list_methods() if get_method(n).soft_targets)
        raise UsageError(f'--mixup / --cutmix mix the targets; they work only with --task {soft} and --paco-views '
                         f'{TIMM_VIEWS} (got --task {task} with {views.num_views} view(s))')
    check_loss_flags(args, method, views.timm_views, views.num_views, mixup)
    adjustable = method.prior == 'logit-adjust'
    if args.prior_tau != 1.0 and (method.prior == 'none' or (adjustable and args.paco_logit_adjust == 'off')):
        raise UsageError(f'--prior-tau {args.prior_tau}: --task {task} adds no class prior'
                         + (' with --paco-logit-adjust off' if adjustable else ''))
    if args.smoothing and method.smoothing is None:
        raise UsageError(f'--smoothing {args.smoothing}: the {task} loss takes no label smoothing')
    if method.num_views is not None and views.num_views != method.num_views:
        raise UsageError(f'--task {task} needs {method.num_views} views per image'
                         + (' (query, key)' if method.key_encoder else '') + f'; --paco-views gives {views.num_views}')
    if method.projector and _is_second_order(args.opt):
        raise UsageError(f'--opt {args.opt}: a second-order optimiser differentiates the gradients, and the '
                         f'{task} loss has hand-written first-order gradients; use a first-order --opt')
    if args.model_dtype in ('float16', 'bfloat16') and (method.key_encoder or args.model_ema):
        why = ('timm (1.0.31) rounds its updates stochastically, from a random state that checkpoints do not keep, so '
               'a resumed run would not repeat the uninterrupted one' if args.model_dtype == 'bfloat16' else
               'loses most updates to rounding')
        raise UsageError(f'--model-dtype {args.model_dtype}: an exponential moving average (the {task} key encoder, '
                         f'--model-ema) kept in {args.model_dtype} {why}; use --amp with a float32 model')
    if views.patches and (views.timm_views or args.no_aug):
        raise UsageError(f'--pbsd-weight {args.pbsd_weight}: PBSD draws its boxes and patches on the query view of '
                         f'the V-view transform, which ' + ('--no-aug turns off' if args.no_aug else
                         f'--paco-views {TIMM_VIEWS} replaces') + '; use --pbsd-weight 0 or drop that flag')
    _check_second_stage(args, mixup)
    if method.check is not None:
        try:
            method.check(args)
        except ValueError as e:
            raise UsageError(str(e)) from None
    if args.torchscript and method.projector:
        raise UsageError(f'--torchscript: the {task} task\'s model and projector are not scriptable; use '
                         f'--torchcompile')


def _check_second_stage(args, mixup: bool) -> None:
    """``--classifier-retrain`` and ``--sampler`` with the loader's other flags."""
    if args.classifier_retrain and mixup:
        raise UsageError(f'--classifier-retrain {args.classifier_retrain} does not combine with --mixup / --cutmix')
    if args.sampler != 'instance':
        for flag, value in (('--mixup / --cutmix', mixup or None), ('--train-img-sizes', args.train_img_sizes),
                            ('--train-batches-per-epoch', args.train_batches_per_epoch),
                            ('--aug-repeats', args.aug_repeats or None)):
            if value is not None:
                raise UsageError(f'--sampler {args.sampler} does not combine with {flag} (timm\'s own loader)')


def _check_view_loader(args, views: ViewPlan) -> None:
    """Flags of timm's single-view loader that the V-view loader lacks."""
    if views.timm_views:
        return
    for flag, value in (('--train-img-sizes', args.train_img_sizes),
                        ('--train-batches-per-epoch', args.train_batches_per_epoch),
                        ('--aug-repeats', args.aug_repeats or None)):
        if value is not None:
            raise UsageError(f'{flag} works only with timm\'s single-view loader (--paco-views {TIMM_VIEWS})')
    if args.resplit and args.no_prefetcher:
        raise UsageError('--resplit with --paco-views needs the prefetcher (it skips erasing view 0 on the device)')


def check_combinations(args, method: Method, views: ViewPlan) -> None:
    """UsageError on flags that cannot combine with each other, ``method`` or its views."""
    _check_unsupported(args)
    _check_task(args, method, views)
    _check_view_loader(args, views)


def check_patch_model(args, views: ViewPlan, model, input_size) -> None:
    """UsageError when PBSD's patch views (``views.patches``) cannot run on ``model``: no last feature map
    (``forward_intermediates``), or a patch embedding that takes only the view size."""
    if not views.patches:
        return
    name = args.model
    try:
        check_feature_map(model, name=name, weight=args.pbsd_weight, input_size=tuple(input_size))
    except ValueError as e:
        raise UsageError(str(e)) from None
    patch_embed = getattr(model, 'patch_embed', None)
    if getattr(patch_embed, 'strict_img_size', False) and tuple(input_size[-2:]) != (args.pbsd_patch_size,) * 2:
        raise UsageError(f'--pbsd-patch-size {args.pbsd_patch_size}: model {name} takes only '
                         f'{input_size[-2]}x{input_size[-1]} inputs; add --model-kwargs dynamic_img_size=True '
                         f'(ViTs) so it takes the {args.pbsd_patch_size}-pixel patches too')
