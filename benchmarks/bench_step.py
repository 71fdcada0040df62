#!/usr/bin/env python3
""" Training step time of the paco / gpaco (and dscl) tasks over the CE step with the same views and backbone.

One step = task forward (all views), backward, SGD update and ``task.update_ema`` (the PaCo key encoder).
CE runs the plain timm model on both views (``--task ce --paco-views randcls_sim`` in train.py); paco and gpaco
run the same model with the task's projector beside it. Inputs are random tensors, so only the step is timed.

    python benchmarks/bench_step.py --model resnet18 --img-size 64 -b 32 --device cpu
    python benchmarks/bench_step.py --model resnet50 --img-size 224 -b 128 --amp --channels-last   # a GPU

``--pbsd`` also times dscl without PBSD and dscl with it (L ``--pbsd-patches`` crops of ``--pbsd-patch-size`` per
image through the whole model, the RoIAlign teachers on the query's last map): ``pbsd_overhead`` is the ratio.

``--view-forward`` also times ce, gpaco (and with ``--pbsd`` dscl + PBSD) with ``--view-forward joint`` (all views,
all patch groups in one forward, BatchNorm over the mixed batch) beside the default ``per-view`` (one forward per
view / patch group, the authors' BatchNorm batches): ``joint_over_per_view`` is the ratio of their step times.

``--amp`` autocasts to ``--amp-dtype`` (bfloat16 by default); float16 on CUDA adds torch's grad scaler as
train.py does (timm's NativeScaler). Images/s counts images (each of which has 2 views) per second.
"""
import argparse
import json
import sys
import time

import timm
import torch

from timm_paco.arg_types import non_negative_int, positive_int
from timm_paco.data import PatchBatch
from timm_paco.finite import grads_finite
from timm_paco.methods import create_task


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='PaCo / GPaCo step time over CE')
    parser.add_argument('--model', default='resnet18', help='timm backbone (default: resnet18)')
    parser.add_argument('--num-classes', type=positive_int, default=100)
    parser.add_argument('--img-size', type=positive_int, default=64)
    parser.add_argument('-b', '--batch-size', type=positive_int, default=32, help='images per step (2 views each)')
    parser.add_argument('--steps', type=positive_int, default=10, help='timed steps per task and round')
    parser.add_argument('--warmup', type=non_negative_int, default=3, help='untimed steps per task and round')
    parser.add_argument('--rounds', type=positive_int, default=3,
                        help='interleaved rounds; the median round is reported')
    parser.add_argument('--queue-size', type=positive_int, default=8192)
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--amp', action='store_true', help='autocast to --amp-dtype')
    parser.add_argument('--amp-dtype', default='bfloat16', choices=('bfloat16', 'float16'))
    parser.add_argument('--channels-last', action='store_true')
    parser.add_argument('--threads', type=positive_int, default=None, help='torch CPU threads')
    parser.add_argument('--guard', action='store_true',
                        help="also time each task with train.py's non-finite guard (a finite-loss check before the "
                             "backward, a finite-gradient check before the update) and report its cost")
    parser.add_argument('--pbsd', action='store_true',
                        help='also time dscl without and with PBSD (its patch self-distillation) and report the ratio')
    parser.add_argument('--pbsd-patches', type=positive_int, default=5, help='PBSD patches per image (default: 5)')
    parser.add_argument('--pbsd-patch-size', type=positive_int, default=None,
                        help='PBSD patch side in pixels (default: 64 · img-size / 224, the paper\'s share)')
    parser.add_argument('--view-forward', action='store_true',
                        help='also time ce, gpaco (and dscl + PBSD) with one joint forward of all views; report the '
                             'joint / per-view step time ratio')
    parser.add_argument('--json', default='', help='write the results to this file')
    return parser.parse_args(argv)


def _build(name, args, device):
    torch.manual_seed(0)
    model = timm.create_model(args.model, num_classes=args.num_classes)
    model.to(device)
    if args.channels_last:
        model.to(memory_format=torch.channels_last)
    projector = None if name.startswith('ce') else dict(proj_dim=128)
    method, _, view_forward = name.partition(':')
    task_name = method.split('+')[0]
    extra = dict(pbsd_weight=1.5 if method == 'dscl+pbsd' else 0.0) if task_name == 'dscl' else {}
    task = create_task(task_name, model, num_views=2, smoothing=None if task_name == 'dscl' else 0.0, verbose=False,
                       projector=projector, queue_size=None if task_name == 'ce' else args.queue_size,
                       view_forward=view_forward or 'per-view', **extra)
    optimizer = torch.optim.SGD(task.get_trainable_module().parameters(), lr=0.01, momentum=0.9)
    return task, optimizer


def _sync(device):
    if device.type == 'cuda':
        torch.cuda.synchronize()


def _run(task, optimizer, input, target, steps, device, autocast, scaler, guard=False):
    _sync(device)
    start = time.perf_counter()
    params = list(task.get_trainable_module().parameters())
    for _ in range(steps):
        with autocast():
            loss = task(input, target)['loss']
        if guard and not bool(torch.isfinite(loss)):  # as train.py: one sync before the backward
            raise FloatingPointError('non-finite loss')
        if scaler is None:
            loss.backward()
            if guard and not grads_finite(params):  # as train.py without a grad scaler: before the update
                raise FloatingPointError('non-finite gradient')
            optimizer.step()
        else:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        optimizer.zero_grad(set_to_none=True)
        task.update_ema()
    _sync(device)
    return (time.perf_counter() - start) / steps


def _patch_batch(views, args, generator, device) -> PatchBatch:
    """A PBSD batch: the views, L random patches per image and L random boxes on the query view."""
    size = args.pbsd_patch_size or max(1, round(64 * args.img_size / 224))
    batch, side = args.batch_size, args.img_size
    patches = torch.randn(args.pbsd_patches * batch, 3, size, size, generator=generator).to(device)
    corner = torch.rand(args.pbsd_patches, batch, 2, generator=generator) * side / 2
    boxes = torch.cat([corner, corner + side / 2], dim=-1).to(device)
    if args.channels_last:
        patches = patches.contiguous(memory_format=torch.channels_last)
    return PatchBatch(views, patches, boxes)


def main(argv=None):
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    g = torch.Generator().manual_seed(0)
    input = torch.randn(2 * args.batch_size, 3, args.img_size, args.img_size, generator=g).to(device)
    if args.channels_last:
        input = input.contiguous(memory_format=torch.channels_last)
    target = torch.randint(0, args.num_classes, (args.batch_size,), generator=g).to(device)
    scaler = None
    if args.amp:
        amp_dtype = getattr(torch, args.amp_dtype)

        def autocast():
            return torch.autocast(device_type=device.type, dtype=amp_dtype)
        if amp_dtype == torch.float16 and device.type == 'cuda':
            scaler = torch.amp.GradScaler(device.type)
    else:
        from contextlib import nullcontext as autocast

    names = ('ce', 'gpaco', 'paco') + (('dscl', 'dscl+pbsd') if args.pbsd else ())
    joint = tuple(f'{n}:joint' for n in names if n in ('ce', 'gpaco', 'dscl+pbsd')) if args.view_forward else ()
    names += joint
    inputs = {n: input for n in names}
    if args.pbsd:
        inputs['dscl+pbsd'] = _patch_batch(input, args, g, device)
        if args.view_forward:
            inputs['dscl+pbsd:joint'] = inputs['dscl+pbsd']
    built = {n: _build(n, args, device) for n in names}
    for task, optimizer in built.values():
        task.get_trainable_module().train()
    runs = [(n, False) for n in names] + ([(n, True) for n in names] if args.guard else [])
    times = {run: [] for run in runs}
    for _ in range(args.rounds):
        for n, guard in runs:
            if args.warmup:
                _run(*built[n], inputs[n], target, args.warmup, device, autocast, scaler, guard)
            times[(n, guard)].append(_run(*built[n], inputs[n], target, args.steps, device, autocast, scaler,
                                          guard))
    median = {n: sorted(times[(n, False)])[len(times[(n, False)]) // 2] for n in names}
    guarded = {n: sorted(times[(n, True)])[len(times[(n, True)]) // 2] for n in names} if args.guard else {}
    result = dict(
        device=str(device), torch_threads=torch.get_num_threads(), model=args.model, img_size=args.img_size,
        batch_size=args.batch_size, views=2, amp=args.amp_dtype if args.amp else False,
        channels_last=args.channels_last,
        step_s={n: round(median[n], 4) for n in names},
        images_per_s={n: round(args.batch_size / median[n], 1) for n in names},
        ratio_over_ce={n: round(median[n] / median['ce'], 3) for n in names},
    )
    if args.pbsd:
        result['pbsd_patches'], result['pbsd_patch_size'] = args.pbsd_patches, inputs['dscl+pbsd'].patches.shape[-1]
        result['pbsd_overhead'] = round(median['dscl+pbsd'] / median['dscl'], 3)
    if joint:
        result['joint_over_per_view'] = {n: round(median[n] / median[n.split(':')[0]], 3) for n in joint}
    if guarded:
        result['guard_step_s'] = {n: round(guarded[n], 4) for n in names}
        result['guard_ratio'] = {n: round(guarded[n] / median[n], 3) for n in names}
    print(json.dumps(result, indent=2))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(result, f, indent=2)
    return result


if __name__ == '__main__':
    from timm_paco.cli.errors import run_main
    sys.exit(run_main(main, 'bench_step.py'))
