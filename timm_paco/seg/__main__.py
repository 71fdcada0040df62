"""``python -m timm_paco.seg {train,evaluate,mosaics,quickstart} …``: GPaCo semantic segmentation.

    python -m timm_paco.seg quickstart                   # CE vs CE + pixel PaCo on Fashion-MNIST mosaics (CPU);
                                                         # also spelt --quickstart
    python -m timm_paco.seg mosaics --output data/mosaics
    python -m timm_paco.seg train --data-dir data/mosaics --encoder resnet18 --arch UPerNet --loss pixel-paco
    torchrun --nproc_per_node 2 -m timm_paco.seg train …
    python -m timm_paco.seg evaluate --data-dir data/mosaics --checkpoint output/seg/<run>/last.pth.tar
"""
import sys

from timm_paco.cli.errors import run_main

COMMANDS = ('train', 'evaluate', 'mosaics', 'quickstart')


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ['--quickstart']:  # the spelling of timm-style flags
        argv[0] = 'quickstart'
    if argv[:1] in (['-h'], ['--help']):
        print(f'usage: python -m timm_paco.seg {{{",".join(COMMANDS)}}} [flags]; each command has --help\n{__doc__}')
        return 0
    if not argv or argv[0] not in COMMANDS:
        given = f' (got {argv[0]!r})' if argv else ''
        print(f'usage: python -m timm_paco.seg {{{",".join(COMMANDS)}}} [flags]{given}\n{__doc__}', file=sys.stderr)
        return 2
    command, rest = argv[0], argv[1:]
    if command == 'train':
        from timm_paco.cli.interrupts import install_stop_signals
        from timm_paco.seg.train import main as run
        install_stop_signals()
    elif command == 'evaluate':
        from timm_paco.seg.evaluate import main as run
    elif command == 'mosaics':
        from timm_paco.seg.mosaics_cli import main as run
    else:
        from timm_paco.seg.quickstart import main as run
    return run_main(lambda a: (run(a), 0)[1], f'python -m timm_paco.seg {command}', rest)


if __name__ == '__main__':
    sys.exit(main())
