#!/usr/bin/env python3
"""``python train.py …`` in a checkout: the training driver ``timm_paco.train`` (also ``python -m timm_paco.train``
and ``timm-paco-train`` from an installed package), with timm's train.py flags plus timm_paco's."""
import sys

from timm_paco.train import cli

if __name__ == '__main__':
    sys.exit(cli())
