"""``python -m timm_paco.seg mosaics``: write a Fashion-MNIST mosaic segmentation set (``timm_paco.seg.mosaics``)."""
import argparse
from dataclasses import fields

from timm_paco.seg.mosaics import MosaicRecipe, write_mosaics

__all__ = ['main']


def main(argv=None):
    parser = argparse.ArgumentParser(prog='python -m timm_paco.seg mosaics', description=__doc__.split('\n')[0])
    parser.add_argument('--output', required=True, help='folder of the set (train/, test/, mosaics.json)')
    for f in fields(MosaicRecipe):
        parser.add_argument('--' + f.name.replace('_', '-'), type=type(f.default), default=f.default,
                            help=f'(default: {f.default})')
    parser.add_argument('--debug', action='store_true', help='print the traceback of an error')
    args = parser.parse_args(argv)
    recipe = MosaicRecipe(**{f.name: getattr(args, f.name) for f in fields(MosaicRecipe)})
    meta = write_mosaics(args.output, recipe)
    print(f'{args.output}: {recipe.n_train} train and {recipe.n_test} test mosaics of {recipe.grid}x{recipe.grid} '
          f'garments; training pixels per class {dict(zip(meta["classes"], meta["pixels"]["train"]))}')
    return meta
