"""The table of every ``SLUICE_*`` variable, generated from the settings classes.

``python -m sluice.settings_doc --write README.md`` rewrites the block between the
``<!-- settings:start -->`` and ``<!-- settings:end -->`` markers; a test checks that
the README's block is current, so no setting goes undocumented.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr
from pydantic.fields import FieldInfo

from sluice.config import SluiceSettings

PACKAGES: tuple[str, ...] = (
    "sluice",
    "schemas",
    "ingest_api",
    "producers",
    "firehose_transforms",
    "warehouse",
    "consumers",
    "deploy",
)
START, END = "<!-- settings:start -->", "<!-- settings:end -->"


@dataclass(frozen=True)
class SettingDoc:
    """One environment variable: its class, default and description."""

    variable: str
    owner: str
    default: str
    description: str


def _import_config_modules() -> None:
    for package in PACKAGES:
        pkg = importlib.import_module(package)
        for info in pkgutil.walk_packages(pkg.__path__, prefix=f"{package}."):
            if info.name.rsplit(".", 1)[-1] == "config":
                importlib.import_module(info.name)


def _subclasses(cls: type) -> list[type]:
    found: list[type] = []
    subs: list[type] = type.__subclasses__(cls)
    for sub in subs:
        found.append(sub)
        found.extend(_subclasses(sub))
    return found


def _default(field: FieldInfo) -> str:
    if field.is_required():
        return "(required)"
    value = field.get_default(call_default_factory=True)
    if value is None:
        return "(unset)"
    if isinstance(value, SecretStr):
        return "(secret)"
    if hasattr(value, "value"):
        value = value.value
    return f"`{value}`"


def collect() -> list[SettingDoc]:
    """Every variable of every settings class, sorted by variable name."""
    _import_config_modules()
    docs: dict[str, SettingDoc] = {}
    # Sorted so a variable read by two classes is always attributed to the same one,
    # whatever order the modules were imported in; classes outside the project's
    # packages (a test's own subclass) are not documented.
    classes = sorted(
        (c for c in _subclasses(SluiceSettings) if c.__module__.split(".")[0] in PACKAGES),
        key=lambda c: (c.__module__, c.__qualname__),
    )
    for cls in classes:
        if not issubclass(cls, SluiceSettings):
            continue
        prefix = str(cls.model_config.get("env_prefix", "SLUICE_"))
        for name, field in cls.model_fields.items():
            variable = f"{prefix}{name}".upper()
            description = (field.description or "").replace("|", "\\|").replace("\n", " ")
            owner = f"{cls.__module__.split('.')[0]}.{cls.__name__}"
            docs.setdefault(variable, SettingDoc(variable, owner, _default(field), description))
    return sorted(docs.values(), key=lambda d: d.variable)


def markdown() -> str:
    """The settings table as Markdown."""
    lines = ["| variable | default | settings class | meaning |", "| --- | --- | --- | --- |"]
    for d in collect():
        lines.append(f"| `{d.variable}` | {d.default} | `{d.owner}` | {d.description} |")
    return "\n".join(lines)


def rewrite(readme: Path) -> bool:
    """Replace the settings block in ``readme``; True when the file changed."""
    text = readme.read_text()
    head, sep, rest = text.partition(START)
    _, sep2, tail = rest.partition(END)
    if not sep or not sep2:
        raise SystemExit(f"{readme} has no {START} ... {END} block")
    new = f"{head}{START}\n{markdown()}\n{END}{tail}"
    if new != text:
        readme.write_text(new)
        return True
    return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--write", type=Path, help="rewrite the settings block of this file")
    args = parser.parse_args()
    if args.write:
        print("updated" if rewrite(args.write) else "already current")
    else:
        print(markdown())


if __name__ == "__main__":
    main()
