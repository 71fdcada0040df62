"""``python -m timm_paco.seg quickstart``: CE against CE + GPaCo's pixel PaCo loss on Fashion-MNIST mosaics, on
the CPU, with the same model, budget and seeds.

Stages (each printed with its command line and elapsed time):

1. data: the mosaics (``timm_paco.seg.mosaics``, default recipe: 400 training canvases drawn from a long tail over
   the ten garments, imbalance 0.01, and 200 test canvases drawn uniformly from the test images);
2. train: ``python -m timm_paco.seg train --loss ce`` and ``--loss pixel-paco`` for every seed;
3. evaluate: ``python -m timm_paco.seg evaluate`` on the test mosaics (mIoU, pixel accuracy, per-class IoU);
4. report: mean ± std over the seeds of mIoU, the mIoU of the three classes with the fewest training pixels and
   pixel accuracy, printed; with ``--docs DIR`` also ``DIR/seg_mosaics.md`` (the table and the setup), a picture
   of predictions of both models and a per-class IoU figure.

A rerun reuses a run whose ``test_results.json`` exists and whose ``args.yaml`` records this budget; a run folder of
another budget is refused by the trainer (``--overwrite`` starts those over).
"""
import argparse
import json
import os
import statistics
import sys
import time
from typing import Dict, List

from timm_paco.arg_types import non_negative_int, positive_int, require_distinct
from timm_paco.runs import run_stage
from timm_paco.seg.mosaics import MosaicRecipe, SEG_CLASSES, write_mosaics

__all__ = ['main', 'SEG_RECIPE', 'TINY_SEG_RECIPE', 'seg_train_command', 'format_mean_std', 'LOSSES']

LOSSES = (('ce', 'CE'), ('pixel-paco', 'CE + pixel PaCo'))
# The CPU budget of both methods: UPerNet (GPaCo's ADE20K decoder) at 64 channels on timm's resnet18, SGD with
# mmseg's poly schedule.
SEG_RECIPE = dict(encoder='resnet18', arch='UPerNet', model_kwargs=dict(decoder_channels=64), epochs=12,
                  batch_size=8, lr=0.1, weight_decay=5e-4, paco_pixels=8192)
TINY_SEG_RECIPE = dict(SEG_RECIPE, epochs=1, batch_size=4)
TINY_MOSAICS = MosaicRecipe(n_train=16, n_test=8)
_REUSE_KEYS = ('encoder', 'arch', 'model_kwargs', 'epochs', 'batch_size', 'lr', 'weight_decay', 'seed', 'loss',
               'paco_pixels', 'data_dir')


def _parse_args(argv=None):
    parser = argparse.ArgumentParser(prog='python -m timm_paco.seg quickstart',
                                     description='CE vs CE + pixel PaCo (GPaCo) on Fashion-MNIST mosaics, on the CPU')
    parser.add_argument('--output', default=os.path.join('output', 'seg_quickstart'), help='output folder')
    parser.add_argument('--seeds', nargs='+', type=non_negative_int, default=[0], help='training seeds (default: 0)')
    parser.add_argument('--epochs', type=positive_int, default=None,
                        help=f'epochs of both runs (default: {SEG_RECIPE["epochs"]})')
    parser.add_argument('--encoder', default=SEG_RECIPE['encoder'], help='timm encoder (default: resnet18)')
    parser.add_argument('--tiny', action='store_true', help=f'smoke-test budget: {TINY_MOSAICS.n_train} training '
                                                            f'and {TINY_MOSAICS.n_test} test mosaics, 1 epoch')
    parser.add_argument('--device', default='cpu', help='device of the runs (default: cpu)')
    parser.add_argument('--threads', type=positive_int, default=None, help='torch threads of each run')
    parser.add_argument('--docs', default='', metavar='DIR', help='write the table and figures to DIR')
    parser.add_argument('--overwrite', action='store_true', help='start over runs of another budget')
    parser.add_argument('--debug', action='store_true', help='print the traceback of an error')
    args = parser.parse_args(argv)
    require_distinct(parser, ('--seeds', args.seeds))
    return args


def seg_train_command(data_dir: str, output: str, experiment: str, loss: str, seed: int, recipe: Dict,
                      device: str = 'cpu', overwrite: bool = False) -> List[str]:
    """``python -m timm_paco.seg train`` argv of one run of ``recipe``."""
    decoder = [f'{k}={v}' for k, v in recipe['model_kwargs'].items()]
    return [sys.executable, '-m', 'timm_paco.seg', 'train', '--data-dir', data_dir, '--loss', loss,
            '--encoder', recipe['encoder'], '--arch', recipe['arch'], '--model-kwargs', *decoder,
            '--epochs', str(recipe['epochs']), '-b', str(recipe['batch_size']), '--lr', str(recipe['lr']),
            '--weight-decay', str(recipe['weight_decay']), '--paco-pixels', str(recipe['paco_pixels']),
            '--seed', str(seed), '--device', device, '--workers', '0', '--val-split', '',  # scored by evaluate
            '--output', output, '--experiment', experiment] + (
        ['--overwrite'] if overwrite else [])


def _reusable(run_dir: str, expected: Dict) -> bool:
    """A finished, scored run (``test_results.json``) whose ``args.yaml`` records ``expected``."""
    import yaml
    if not os.path.isfile(os.path.join(run_dir, 'test_results.json')):
        return False
    with open(os.path.join(run_dir, 'args.yaml')) as f:
        saved = yaml.safe_load(f) or {}
    return all(saved.get(k) == v for k, v in expected.items())


def _run_one(args, data_dir: str, loss: str, seed: int, recipe: Dict, start: float) -> Dict:
    experiment = f'{loss}-seed{seed}'
    run_dir = os.path.join(args.output, experiment)
    expected = {k: v for k, v in dict(recipe, seed=seed, loss=loss, data_dir=data_dir).items() if k in _REUSE_KEYS}
    results_file = os.path.join(run_dir, 'test_results.json')
    if _reusable(run_dir, expected):
        print(f'[{time.time() - start:7.1f}s] {experiment} reused ({run_dir} holds this budget\'s results)')
        with open(results_file) as f:
            return json.load(f)
    run_stage(f'stage 2/4: train {loss} (seed {seed})',
              seg_train_command(data_dir, args.output, experiment, loss, seed, recipe, args.device, args.overwrite),
              start=start, threads=args.threads)
    run_stage(f'stage 3/4: evaluate {loss} (seed {seed})',
              [sys.executable, '-m', 'timm_paco.seg', 'evaluate', '--data-dir', data_dir, '--split', 'test',
               '--checkpoint', os.path.join(run_dir, 'last.pth.tar'), '--device', args.device, '--workers', '0',
               '--results-file', results_file], start=start, threads=args.threads)
    with open(results_file) as f:
        return json.load(f)


def summarise(results: Dict[str, List[Dict]]) -> Dict[str, Dict]:
    """Per loss: mean and sample std (0 for one seed) over the seeds of ``miou``, ``miou_rare``, ``pixel_acc``,
    and the mean per-class IoU."""
    summary = {}
    for loss, runs in results.items():
        entry = {}
        for key in ('miou', 'miou_rare', 'pixel_acc'):
            values = [r[key] for r in runs if r.get(key) is not None]
            entry[key] = (statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0) \
                if values else None
        per_class = list(zip(*[r['iou'] for r in runs]))
        entry['iou'] = [None if any(v is None for v in c) else statistics.mean(c) for c in per_class]
        entry['rare_classes'] = runs[0].get('rare_classes')
        summary[loss] = entry
    return summary


def format_mean_std(pair) -> str:
    """``41.89 ± 0.67`` of a (mean, std) pair; ``n/a`` for None."""
    return 'n/a' if pair is None else f'{pair[0]:.2f} ± {pair[1]:.2f}'


def main(argv=None) -> Dict[str, Dict]:
    args = _parse_args(argv)
    start = time.time()
    recipe = dict(TINY_SEG_RECIPE if args.tiny else SEG_RECIPE, encoder=args.encoder)
    if args.epochs is not None:
        recipe['epochs'] = args.epochs
    args.output = os.path.abspath(args.output)
    mosaic_recipe = TINY_MOSAICS if args.tiny else MosaicRecipe()
    data_dir = os.path.join(args.output, 'data', 'mosaics_tiny' if args.tiny else 'mosaics')
    print(f'[{time.time() - start:7.1f}s] stage 1/4: data', flush=True)
    meta = write_mosaics(data_dir, mosaic_recipe, source_root=os.path.join(args.output, 'data', 'fashion_mnist'))
    print(f'  {mosaic_recipe.n_train} training and {mosaic_recipe.n_test} test mosaics in {data_dir}; training '
          f'pixels per class {dict(zip(meta["classes"], meta["pixels"]["train"]))}', flush=True)
    results = {loss: [_run_one(args, data_dir, loss, seed, recipe, start) for seed in args.seeds]
               for loss, _ in LOSSES}
    summary = summarise(results)
    rare = [SEG_CLASSES[c] for c in summary['ce']['rare_classes'] or ()]
    print(f'\n[{time.time() - start:7.1f}s] stage 4/4: report. Test mosaics, mean ± std over seeds {args.seeds} (%):')
    for loss, name in LOSSES:
        s = summary[loss]
        print(f'  {name:16s} mIoU {format_mean_std(s["miou"])} | rare classes ({", ".join(rare)}) '
              f'{format_mean_std(s["miou_rare"])} | pixel accuracy {format_mean_std(s["pixel_acc"])}')
    with open(os.path.join(args.output, 'summary.json'), 'w') as f:
        json.dump(dict(seeds=args.seeds, recipe=recipe, mosaics=meta['recipe'], summary=summary), f, indent=2)
    if args.docs:
        from timm_paco.seg.quickstart_docs import write_docs
        write_docs(args, data_dir, meta, recipe, summary, time.time() - start)
    return summary
