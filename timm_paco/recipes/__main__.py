"""``python -m timm_paco.recipes list``: one line per row of the papers' results tables (name, expected top-1,
GPUs x batch per GPU, source script, the file to pass as ``-c``); ``show NAME``: one recipe's file; ``table``: the
Markdown table of docs/recipes.md."""
import argparse
import sys

from timm_paco.methods import get_method
from timm_paco.recipes import get_recipe, list_recipes


def _line(recipe) -> str:
    hours = f', {recipe.gpu_hours:g} GPU-h' if recipe.gpu_hours else ''
    return (f'{recipe.name:<34} top-1 {recipe.top1:5.1f}  {recipe.gpus} GPU x {recipe.batch_per_gpu}{hours}  '
            f'{recipe.paper}, {recipe.row}  [{recipe.source}]  {recipe.path}')


def _loss(flags) -> str:
    if flags.get('classifier_retrain'):
        return f"{flags['classifier_retrain']}, {flags.get('sampler', 'instance')} sampling"
    method = get_method(flags['task'])
    return method.describe(flags) if method.describe else method.summary


def markdown_table() -> str:
    """One row per recipe: what it reproduces, its budget, optimiser, loss, views and source."""
    lines = ['| recipe | paper, row | top-1 | GPUs x batch | lr at global batch | epochs | optimizer, weight decay | '
             'loss | views | GPU-hours | source |', '|' + '---|' * 11]
    for r in list_recipes():
        f = r.flags
        accum = f.get('grad_accum_steps', 1)
        batch = f'{r.gpus} x {r.batch_per_gpu}' + (f' x {accum} steps' if accum > 1 else '')
        views = f.get('paco_views', '') + (f" ({f['aa']})" if f.get('aa') else '')
        hours = f'{r.gpu_hours:g}' if r.gpu_hours else 'not reported'
        lines.append(f"| `{r.name}` | {r.paper}: {r.row} | {r.top1:.1f} | {batch} | {f['lr_base']:g} at "
                     f"{f['lr_base_size']} | {f['epochs']} | {f['opt']}, {f['weight_decay']:g}"
                     f"{' (all parameters)' if f.get('wd_bias_and_norm') else ''} | {_loss(f)} | {views} | {hours} | "
                     f"{r.source} |")
    return '\n'.join(lines) + '\n'


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog='python -m timm_paco.recipes', description=__doc__.split('\n')[0])
    sub = parser.add_subparsers(dest='command', required=True)
    sub.add_parser('list', help='one line per recipe')
    sub.add_parser('table', help='the Markdown table of docs/recipes.md')
    show = sub.add_parser('show', help="print a recipe's YAML")
    show.add_argument('name')
    args = parser.parse_args(argv)
    if args.command == 'list':
        for recipe in list_recipes():
            print(_line(recipe))
        return 0
    if args.command == 'table':
        sys.stdout.write(markdown_table())
        return 0
    try:
        recipe = get_recipe(args.name)
    except ValueError as e:
        print(f'python -m timm_paco.recipes: error: {e}', file=sys.stderr)
        return 2
    with open(recipe.path) as f:
        sys.stdout.write(f.read())
    return 0


if __name__ == '__main__':
    sys.exit(main())
