"""Read the interface of the Terraform modules under ``deploy/terraform`` and document it.

No terraform binary is needed: the ``.tf`` files are parsed with python-hcl2. The
module READMEs carry a generated table of variables and outputs between two markers;
``python -m deploy.tfmodules`` rewrites them and ``--check`` fails when one is stale
(the unit tests run the same check).
"""

from __future__ import annotations

import argparse
import copy
import functools
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sluice.errors import FatalError

TERRAFORM_ROOT = Path(__file__).resolve().parent / "terraform"
BEGIN_MARKER = "<!-- BEGIN GENERATED: variables and outputs (python -m deploy.tfmodules) -->"
END_MARKER = "<!-- END GENERATED -->"

_REFERENCE = re.compile(r"\bmodule\.([A-Za-z_][A-Za-z0-9_-]*)\.([A-Za-z_][A-Za-z0-9_-]*)")
_VAR_REFERENCE = re.compile(r"\bvar\.([A-Za-z_][A-Za-z0-9_-]*)")
_COMMENT = re.compile(r"(?m)^\s*(#|//).*$")
# Block attributes of a `module` call that are not inputs of the module.
_META_ARGUMENTS = frozenset({"source", "version", "count", "for_each", "providers", "depends_on"})


class TerraformParseError(FatalError):
    """A ``.tf`` file could not be parsed or a module does not have the expected shape."""


@dataclass(frozen=True)
class Variable:
    """One ``variable`` block."""

    name: str
    description: str | None
    type: str | None
    required: bool
    sensitive: bool = False


@dataclass(frozen=True)
class Output:
    """One ``output`` block."""

    name: str
    description: str | None


@dataclass(frozen=True)
class ModuleCall:
    """One ``module`` block: where it points and which inputs it passes."""

    name: str
    source: str
    inputs: frozenset[str]


@dataclass
class ModuleInterface:
    """Variables, outputs and module calls of one directory of ``.tf`` files."""

    path: Path
    variables: dict[str, Variable] = field(default_factory=dict)
    outputs: dict[str, Output] = field(default_factory=dict)
    module_calls: dict[str, ModuleCall] = field(default_factory=dict)

    @property
    def required_variables(self) -> set[str]:
        """Names of the variables without a default."""
        return {name for name, variable in self.variables.items() if variable.required}


def plain(value: Any) -> Any:
    """python-hcl2 output made version independent.

    Newer python-hcl2 releases keep the quotes of string literals and block labels and
    add ``__is_block__`` / ``__comments__`` entries; this strips both, so
    ``"\\"name\\""`` becomes ``"name"``.
    """
    if isinstance(value, str):
        if len(value) >= 2 and value.startswith('"') and value.endswith('"'):
            return value[1:-1]
        return value
    if isinstance(value, Mapping):
        return {
            plain(key): plain(item)
            for key, item in value.items()
            if not (key.startswith("__") and key.endswith("__"))
        }
    if isinstance(value, list):
        return [plain(item) for item in value]
    return value


def type_expression(value: Any) -> str | None:
    """The type constraint as written (``string``, ``map(object({...}))``)."""
    if value is None:
        return None
    text = str(value)
    if text.startswith("${") and text.endswith("}"):
        text = text[2:-1]
    return text


def load_tf(path: Path) -> dict[str, Any]:
    """Parse one ``.tf`` file into plain python values (cached while the file is unchanged)."""
    stat = path.stat()
    return copy.deepcopy(_load_tf(path.resolve(), stat.st_mtime_ns, stat.st_size))


@functools.lru_cache(maxsize=256)
def _load_tf(path: Path, mtime_ns: int, size: int) -> dict[str, Any]:
    del mtime_ns, size  # part of the cache key only
    import hcl2  # imported at the edge only: a dev dependency
    from lark.exceptions import LarkError

    try:
        with path.open(encoding="utf-8") as handle:
            parsed = hcl2.load(handle)
    except (LarkError, ValueError) as exc:
        raise TerraformParseError(f"{path}: {exc}", code="hcl_parse_error") from exc
    result: dict[str, Any] = plain(parsed)
    return result


def _blocks(document: Mapping[str, Any], kind: str) -> Iterable[tuple[str, dict[str, Any]]]:
    for entry in document.get(kind, []):
        yield from entry.items()


def read_module(directory: Path) -> ModuleInterface:
    """The interface of the ``.tf`` files of ``directory`` (not recursive)."""
    interface = ModuleInterface(path=directory)
    for path in sorted(directory.glob("*.tf")):
        document = load_tf(path)
        for name, body in _blocks(document, "variable"):
            interface.variables[name] = Variable(
                name=name,
                description=body.get("description"),
                type=type_expression(body.get("type")),
                required="default" not in body,
                sensitive=bool(body.get("sensitive", False)),
            )
        for name, body in _blocks(document, "output"):
            interface.outputs[name] = Output(name=name, description=body.get("description"))
        for name, body in _blocks(document, "module"):
            interface.module_calls[name] = ModuleCall(
                name=name,
                source=str(body.get("source", "")),
                inputs=frozenset(key for key in body if key not in _META_ARGUMENTS),
            )
    return interface


def source_text(directory: Path) -> str:
    """The ``.tf`` text of ``directory`` without comment lines."""
    texts = [path.read_text(encoding="utf-8") for path in sorted(directory.glob("*.tf"))]
    return _COMMENT.sub("", "\n".join(texts))


def module_output_references(directory: Path) -> set[tuple[str, str]]:
    """Every ``module.<name>.<output>`` referenced in the ``.tf`` files of ``directory``."""
    return set(_REFERENCE.findall(source_text(directory)))


def variable_references(directory: Path) -> set[str]:
    """Every ``var.<name>`` referenced in the ``.tf`` files of ``directory``."""
    return set(_VAR_REFERENCE.findall(source_text(directory)))


def module_directories(root: Path = TERRAFORM_ROOT) -> list[Path]:
    """The module directories (``modules/<name>``), sorted."""
    modules = root / "modules"
    return sorted(path for path in modules.iterdir() if path.is_dir())


def environment_directories(root: Path = TERRAFORM_ROOT) -> list[Path]:
    """The environment directories (``environments/<name>``), sorted."""
    environments = root / "environments"
    return sorted(path for path in environments.iterdir() if path.is_dir())


def _cell(text: str | None) -> str:
    return (text or "").replace("|", "\\|").replace("\n", " ")


def render_interface(interface: ModuleInterface) -> str:
    """Markdown tables of the variables and outputs, between the generated markers."""
    lines = [BEGIN_MARKER, "", "### Variables", ""]
    if interface.variables:
        lines += ["| Name | Type | Required | Description |", "| --- | --- | --- | --- |"]
        for variable in sorted(interface.variables.values(), key=lambda item: item.name):
            required = "yes" if variable.required else "no"
            if variable.sensitive:
                required += " (sensitive)"
            lines.append(
                f"| `{variable.name}` | `{_cell(variable.type)}` | {required} "
                f"| {_cell(variable.description)} |"
            )
    else:
        lines.append("None.")
    lines += ["", "### Outputs", ""]
    if interface.outputs:
        lines += ["| Name | Description |", "| --- | --- |"]
        for output in sorted(interface.outputs.values(), key=lambda item: item.name):
            lines.append(f"| `{output.name}` | {_cell(output.description)} |")
    else:
        lines.append("None.")
    lines += ["", END_MARKER]
    return "\n".join(lines)


def update_readme(text: str, generated: str) -> str:
    """``text`` with the generated section replaced (appended when it has none)."""
    start = text.find(BEGIN_MARKER)
    end = text.find(END_MARKER)
    if start == -1 or end == -1 or end < start:
        separator = "" if text.endswith("\n\n") else ("\n" if text.endswith("\n") else "\n\n")
        return f"{text}{separator}{generated}\n"
    return text[:start] + generated + text[end + len(END_MARKER) :]


def stale_readmes(root: Path = TERRAFORM_ROOT, *, write: bool = False) -> list[Path]:
    """READMEs whose generated section differs from the module's interface.

    With ``write=True`` they are rewritten (and still returned).
    """
    stale: list[Path] = []
    for directory in [*module_directories(root), *environment_directories(root)]:
        readme = directory / "README.md"
        current = readme.read_text(encoding="utf-8") if readme.exists() else ""
        wanted = update_readme(current, render_interface(read_module(directory)))
        if wanted != current:
            stale.append(readme)
            if write:
                readme.write_text(wanted, encoding="utf-8")
    return stale


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m deploy.tfmodules [--check] [ROOT]``: regenerate the README tables."""
    parser = argparse.ArgumentParser(prog="python -m deploy.tfmodules", description=__doc__)
    parser.add_argument("root", nargs="?", type=Path, default=TERRAFORM_ROOT)
    parser.add_argument("--check", action="store_true", help="only report stale READMEs")
    args = parser.parse_args(argv)
    stale = stale_readmes(args.root, write=not args.check)
    for path in stale:
        print(f"{'stale' if args.check else 'updated'}: {path}")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
