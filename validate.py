#!/usr/bin/env python3
"""``python validate.py …`` in a checkout: the validation driver ``timm_paco.validate`` (also ``python -m
timm_paco.validate`` and ``timm-paco-validate`` from an installed package), with timm's validate.py flags plus
long-tail and out-of-distribution metrics."""
import sys

from timm_paco.validate import cli

if __name__ == '__main__':
    sys.exit(cli())
