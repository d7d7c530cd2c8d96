"""Installing extras without losing the installed torch: the pins and the commands that use them.

pip resolves an unpinned torchvision, timm or transformers to the newest torch, and on Linux
that is a CUDA build with about 20 ``nvidia-*`` packages: it would replace the torch you
have. The pins ship inside the package (``iaside/constraints.txt``, also the repository's
``constraints.txt``); ``constraints()`` gives them with torch held at the installed version.
"""

from __future__ import annotations

import re
from importlib.metadata import PackageNotFoundError, version
from importlib.resources import files

PINS_FILE = "constraints.txt"
TORCHVISION_MINOR_OFFSET = 15
"""torch 2.Y pairs with torchvision 0.(Y + 15) (2.0 with 0.15, ..., 2.13 with 0.28)."""


def shipped_pins() -> str:
    """The pins iaside is tested with, as shipped (a pip constraints file)."""
    return files("iaside").joinpath(PINS_FILE).read_text()


def installed_torch() -> str | None:
    """The installed torch's version (with its local tag, e.g. '2.5.1+cu121'), or None."""
    try:
        return version("torch")
    except PackageNotFoundError:
        return None


def matching_torchvision(torch_version: str) -> str | None:
    """The torchvision release series built for ``torch_version`` ('0.20.*' for 2.5.x), or None."""
    m = re.match(r"2\.(\d+)\.", torch_version)
    return f"0.{int(m.group(1)) + TORCHVISION_MINOR_OFFSET}.*" if m else None


def constraints(torch_version: str | None = None) -> str:
    """The shipped pins, with torch pinned to ``torch_version`` (default: the installed torch's
    public version) and torchvision to its matching series when that differs from the tested pin."""
    text = shipped_pins()
    torch_version = (torch_version or installed_torch() or "").split("+")[0]  # '==2.5.1' matches 2.5.1+cu121
    tested = re.search(r"^torch==(\S+)$", text, re.M)
    if not torch_version or tested is None or torch_version == tested.group(1):
        return text
    lines = [f"# torch {torch_version} is installed: pinned to it (iaside's tests pin torch=={tested.group(1)})"]
    for line in text.splitlines():
        if line.startswith("torch=="):
            line = f"torch=={torch_version}"
        elif line.startswith("torchvision=="):
            series = matching_torchvision(torch_version)
            if series is None:
                continue
            line = f"torchvision=={series}"
        lines.append(line)
    return "\n".join(lines) + "\n"


def pip_hint(*requirements: str, no_deps: bool = False) -> str:
    """The one-line command that installs ``requirements`` with the pins (torch kept as it is)."""
    quoted = " ".join(f"'{r}'" if "[" in r or "<" in r or ">" in r else r for r in requirements)
    return f"iaside constraints | pip install --constraint /dev/stdin {'--no-deps ' if no_deps else ''}{quoted}"
