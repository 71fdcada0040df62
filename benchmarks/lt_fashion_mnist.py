#!/usr/bin/env python3
"""Long-tailed Fashion-MNIST benchmark of every method (one recipe, 3 seeds, a prior τ / smoothing grid chosen on a
validation split): ``timm_paco.runs.benchmark``, whose docstring and ``--help`` say what it runs and writes.

    python benchmarks/lt_fashion_mnist.py    # 15 min on 2 CPU cores; writes docs/lt_fashion_mnist.{md,png}
"""
import sys

from timm_paco.runs.benchmark import cli, main  # noqa: F401  (main: the benchmark as a function)

if __name__ == '__main__':
    sys.exit(cli())
