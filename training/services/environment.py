"""What a run records about the code and machine that trained it."""

from __future__ import annotations

import functools
import platform
import subprocess
from importlib import metadata
from pathlib import Path

import numpy
import sklearn
import torch
from django.conf import settings

#: Reported when the checkout is not a git repository (an installed copy).
PRODUCT_NAME = "cvsa-ml"


@functools.cache
def code_version() -> str:
    """The git commit of the checkout (with ``-dirty`` when tracked files changed), else
    the product's package version, else "unknown". Cached: it is asked once per process."""
    base = Path(settings.BASE_DIR)
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=base, capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=base, capture_output=True, text=True, timeout=5, check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        try:
            return f"{PRODUCT_NAME} {metadata.version(PRODUCT_NAME)}"
        except metadata.PackageNotFoundError:
            return "unknown"
    return f"{commit}-dirty" if dirty else commit


def software_versions() -> dict[str, str]:
    return {
        "code_version": code_version(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "scikit_learn": sklearn.__version__,
        "platform": platform.platform(),
        "torch_threads": str(torch.get_num_threads()),
    }
