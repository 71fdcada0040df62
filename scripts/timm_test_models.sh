#!/usr/bin/env bash
# timm's own model test suite (tests/test_models.py of the installed timm release, from its sdist on PyPI) run over
# the names timm_paco registers. Pretrained cases run offline (HF_HUB_OFFLINE=1): those that need the Hub fail
# only for want of a network. timm's suite picks its non-standard (token-output) cfg test for ViTs by name
# ('vit_*'): the GPaCo ViTs are named vit_<size>_patch16_gpaco_224 for it.
#   bash scripts/timm_test_models.sh [extra pytest args]     # e.g. -x, or -k 'forward and paco_resnet50'
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
version=$(python3 -c 'import timm; print(timm.__version__)')
work=${TIMM_TESTS_DIR:-$(mktemp -d)}
if [ ! -f "$work/timm-$version/tests/test_models.py" ]; then
    python3 -m pip download -q --disable-pip-version-check --no-binary :all: --no-deps -d "$work" "timm==$version"
    tar xzf "$work/timm-$version.tar.gz" -C "$work"
fi
tests="$work/timm-$version/tests"
# a root conftest registers the plugin's models before test_models.py builds its model lists at import
printf 'import timm_paco  # noqa: F401\n' > "$work/timm-$version/conftest.py"
names=$(python3 -c "from timm_paco.models import registered_names; print(' or '.join(registered_names()))")
cd "$work/timm-$version"
HF_HUB_OFFLINE=1 python3 -m pytest -q -p no:cacheprovider "$tests/test_models.py" -k "$names" \
    --rootdir "$work/timm-$version" -o addopts='' "$@"
