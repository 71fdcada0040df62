"""Export or push a trained checkpoint.

  python -m timm_paco.hub export CHECKPOINT OUTPUT_DIR [--model NAME] [--form timm|paco] [--ema] [--results-file R.json]
  python -m timm_paco.hub push CHECKPOINT REPO_ID [--model NAME] [--form timm|paco] [--ema] [--results-file R.json]
        [--private] [--revision BRANCH] [--commit-message MSG] [--token TOKEN]
  python -m timm_paco.hub publish-zoo SRC_DIR [--only TAG ...] [--private] [--token TOKEN]
"""
import argparse
import sys

import timm_paco  # noqa: F401  registers the PaCo architectures
from timm_paco.cli.errors import debug_requested, one_line, run_main
from .export import EXPORT_FORMS, export_checkpoint
from .push import push_checkpoint
from .zoo_publish import publish_zoo


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument('checkpoint', help='train.py checkpoint, state dict, or .safetensors file')
    p.add_argument('--model', default=None, help="architecture (default: the checkpoint's args.model)")
    p.add_argument('--form', default='timm', choices=EXPORT_FORMS,
                   help="'timm' (default): config.json names the stock timm architecture, loads without the plugin; "
                        "'paco': the registered PaCo name, loads after import timm_paco")
    p.add_argument('--ema', action='store_true', help="export the checkpoint's state_dict_ema")
    p.add_argument('--results-file', default=None, help='validate.py --results-file (json or csv) for the model card')
    p.add_argument('--license', default=None,
                   help='the model card\'s licence for a train.py run (default: that of the pretrained weights it was '
                        'fine-tuned from, else apache-2.0); the authors\' converted weights keep their own')


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog='python -m timm_paco.hub', description=__doc__.split('\n')[0])
    p.add_argument('--debug', action='store_true', help='print the traceback of an error (also TIMM_PACO_DEBUG=1)')
    sub = p.add_subparsers(dest='command', required=True)
    exp = sub.add_parser('export', help='write a Hub folder (config.json, model.safetensors, README.md)')
    _common(exp)
    exp.add_argument('output_dir')
    exp.add_argument('--repo-name', default=None, help='repo id named in the model card (default: folder name)')
    exp.add_argument('--overwrite', action='store_true',
                     help='replace the contents of a non-empty output folder (default: refuse)')
    push = sub.add_parser('push', help='export and upload to the Hugging Face Hub')
    _common(push)
    push.add_argument('repo_id')
    push.add_argument('--private', action='store_true', help='create the repo private (when new)')
    push.add_argument('--revision', default=None, help='branch to commit to (created if missing)')
    push.add_argument('--commit-message', default='Add PaCo model')
    push.add_argument('--token', default=None, help='Hub token (default: HF_TOKEN or the saved login)')
    zoo = sub.add_parser('publish-zoo', help="convert the papers' checkpoints and push each to its tag's Hub repo")
    zoo.add_argument('src_dir', help='folder of the downloaded checkpoints, each saved as <tag>.pth.tar')
    zoo.add_argument('--only', nargs='+', default=None, metavar='TAG', help='these tags only (default: the whole zoo)')
    zoo.add_argument('--private', action='store_true', help='create new repos private')
    zoo.add_argument('--token', default=None, help='Hub token (default: HF_TOKEN or the saved login)')
    return p


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    try:
        if args.command == 'publish-zoo':
            status = publish_zoo(args.src_dir, tags=args.only, token=args.token, private=args.private)
            print(', '.join(f'{v} {sum(s == v for s in status.values())}' for v in ('published', 'skipped', 'missing')))
        elif args.command == 'export':
            out = export_checkpoint(
                args.checkpoint, args.output_dir, model_name=args.model, form=args.form, ema=args.ema,
                results_file=args.results_file, repo_name=args.repo_name, overwrite=args.overwrite,
                license=args.license, overwrite_flag='--overwrite')
            print(f'Exported {args.checkpoint} ({args.form} form) to {out}')
        else:
            info = push_checkpoint(
                args.checkpoint, args.repo_id, model_name=args.model, form=args.form, ema=args.ema,
                private=args.private, revision=args.revision, commit_message=args.commit_message,
                token=args.token, results_file=args.results_file, license=args.license)
            print(f'Pushed {args.checkpoint} ({args.form} form): {info.commit_url}')
    except (ValueError, FileNotFoundError) as e:  # the checkpoint, model or folder given does not fit
        if args.debug or debug_requested(()):  # --debug, or TIMM_PACO_DEBUG=1
            raise
        print(f'python -m timm_paco.hub: error: {one_line(e)}', file=sys.stderr)
        return 2
    return 0


if __name__ == '__main__':
    sys.exit(run_main(main, 'python -m timm_paco.hub'))
