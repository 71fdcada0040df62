"""validate.py's model: the plain timm model of ``--model`` with ``--pretrained`` or ``--checkpoint`` weights
(checkpoints of any layout; several checkpoints: a logit-averaging ensemble), then test-time pooling, device,
dtype, memory format, TorchScript / torch.compile / AOT autograd and DataParallel as the flags ask."""
import torch
from timm.layers import apply_test_time_pool
from timm.utils import reparameterize_model

from huggingface_hub.errors import HfHubHTTPError

from timm_paco.cli.errors import one_line
from timm_paco.eval import EnsembleModel, create_eval_model
from timm_paco.models.zoo import PretrainedWeightsUnavailable

__all__ = ['build_model', 'prepare_model']


def _pretrained_model(args, create_kwargs):
    """``--model`` with its pretrained weights; a download that fails (no network, no such file) names the model
    and ``--checkpoint`` as the way to evaluate local weights."""
    try:
        return create_eval_model(args.model, pretrained=args.pretrained, num_classes=args.num_classes,
                                 **create_kwargs)
    except PretrainedWeightsUnavailable:
        raise
    except (OSError, HfHubHTTPError) as e:
        raise RuntimeError(f'--model {args.model}: its pretrained weights could not be loaded ({one_line(e)}); '
                           f'pass --checkpoint FILE for local weights') from e


def build_model(args, checkpoints, in_chans):
    """The evaluated model: ``--pretrained`` (no checkpoint), one checkpoint's, or the ensemble of several."""
    create_kwargs = dict(in_chans=in_chans, global_pool=args.gp, scriptable=args.torchscript, **args.model_kwargs)
    if not checkpoints:
        model = _pretrained_model(args, create_kwargs)
        return reparameterize_model(model) if args.reparam else model
    models = []
    for c in checkpoints:
        m = create_eval_model(
            args.model, checkpoint=c, use_ema=args.use_ema, num_classes=args.num_classes,
            pretrained=args.pretrained, **create_kwargs)
        if args.reparam:
            m = reparameterize_model(m)
        models.append(m)
    return models[0] if len(models) == 1 else EnsembleModel(models)


def prepare_model(model, args, data_config, device, model_dtype):
    """``model`` ready to evaluate: test-time pooling (``--test-pool``), placed, compiled or scripted, in
    DataParallel over ``--num-gpu``, in eval mode. Returns (model, whether test-time pooling is on)."""
    test_time_pool = False
    if args.test_pool:
        model, test_time_pool = apply_test_time_pool(model, data_config)
    model = model.to(device=device, dtype=model_dtype)
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
    if args.torchscript:
        model = torch.jit.script(model)
    elif args.torchcompile:
        torch._dynamo.reset()
        model = torch.compile(model, backend=args.torchcompile, mode=args.torchcompile_mode)
    elif args.aot_autograd:
        from functorch.compile import memory_efficient_fusion
        model = memory_efficient_fusion(model)
    if args.num_gpu > 1:
        model = torch.nn.DataParallel(model, device_ids=list(range(args.num_gpu)))
    model.eval()
    return model, test_time_pool
