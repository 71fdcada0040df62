"""Push a trained checkpoint to the Hugging Face Hub (export to a temporary folder, then one commit)."""
import tempfile
from typing import Optional

from huggingface_hub import HfApi, get_token

from timm_paco.version import __version__
from .export import EXPORT_FORMS, export_checkpoint

__all__ = ['require_token', 'push_checkpoint']


def require_token(token: Optional[str] = None) -> str:
    """``token``, else the one huggingface_hub finds (``HF_TOKEN``, ``hf auth login``); ValueError if none."""
    token = token or get_token()
    if not token:
        raise ValueError(
            'token: no Hugging Face token found. Pass token=..., set the HF_TOKEN environment variable, '
            'or log in once with `hf auth login`')
    return token


def push_checkpoint(
        checkpoint_path: str,
        repo_id: str,
        model_name: Optional[str] = None,
        form: str = 'timm',
        ema: bool = False,
        private: bool = False,
        revision: Optional[str] = None,
        commit_message: str = 'Add PaCo model',
        token: Optional[str] = None,
        results_file: Optional[str] = None,
        endpoint: Optional[str] = None,
        license: Optional[str] = None,
):
    """Export ``checkpoint_path`` (see ``export_checkpoint``) and upload it to ``repo_id``.

    Creates the repo (``private`` when new) and, if ``revision`` names a branch that does not exist yet, the
    branch; then uploads config.json, model.safetensors and README.md in one commit. The token is checked
    and the checkpoint exported before any network call. ``endpoint`` defaults to ``HF_ENDPOINT`` / the Hub.
    ``license``: the card's licence for a train.py run (the authors' weights keep theirs). Returns
    huggingface_hub's ``CommitInfo``.
    """
    if form not in EXPORT_FORMS:
        raise ValueError(f"form: expected one of {EXPORT_FORMS}, got {form!r}")
    if not repo_id or repo_id.count('/') > 1:
        raise ValueError(f"repo_id: expected 'name' or 'owner/name', got {repo_id!r}")
    token = require_token(token)
    with tempfile.TemporaryDirectory() as tmp_dir:
        export_checkpoint(
            checkpoint_path, tmp_dir, model_name=model_name, form=form, ema=ema,
            results_file=results_file, repo_name=repo_id, license=license)
        api = HfApi(endpoint=endpoint, token=token, library_name='timm-paco', library_version=__version__)
        repo_id = api.create_repo(repo_id, private=private, exist_ok=True).repo_id
        if revision:
            api.create_branch(repo_id, branch=revision, exist_ok=True)
        return api.upload_folder(
            repo_id=repo_id, folder_path=tmp_dir, revision=revision, commit_message=commit_message)
