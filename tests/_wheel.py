"""A wheel of this checkout installed into a fresh virtual environment outside it, as ``pip install timm-paco`` would
install it: the environment sees the test interpreter's packages (torch, timm, …: ``--system-site-packages``, no
download), but its own ``timm_paco`` is the wheel's, which comes first on its path."""
import os
import shutil
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCES = ('timm_paco', 'setup.cfg', 'pyproject.toml', 'README.md')  # what setup.cfg builds the wheel from


def _check(argv, **kwargs):
    proc = subprocess.run([str(a) for a in argv], capture_output=True, text=True, **kwargs)
    assert proc.returncode == 0, f'{argv}: {proc.stdout[-2000:]}{proc.stderr[-2000:]}'
    return proc.stdout


def install_wheel(root) -> str:
    """Build the checkout's wheel under ``root`` (from a copy of its sources: the build leaves the checkout as it
    is) and install it into ``root/venv``; returns that environment's python."""
    src, dist, venv = (os.path.join(root, name) for name in ('src', 'dist', 'venv'))
    for name in SOURCES:
        path = os.path.join(REPO, name)
        if os.path.isdir(path):
            shutil.copytree(path, os.path.join(src, name), ignore=shutil.ignore_patterns('__pycache__'))
        else:
            os.makedirs(src, exist_ok=True)
            shutil.copy(path, src)
    _check([sys.executable, '-m', 'pip', 'wheel', '-q', '--no-deps', '--no-build-isolation', '-w', dist, src])
    wheels = [os.path.join(dist, f) for f in os.listdir(dist) if f.endswith('.whl')]
    assert len(wheels) == 1, wheels
    _check([sys.executable, '-m', 'venv', '--system-site-packages', venv])
    python = os.path.join(venv, 'bin', 'python')
    _check([python, '-m', 'pip', 'install', '-q', '--no-deps', '--no-index', '--disable-pip-version-check',
            wheels[0]])
    return python
