"""Build the Lambda artifacts: one zip per function (``sluice package``).

Each zip holds the first-party packages its handler imports (found by reading the
imports, transitively) and, unless ``no_deps``, the third-party distributions they
import, installed by pip for the Lambda platform: CPython 3.12 or 3.13 on Amazon Linux
2023 (glibc 2.34), so ``manylinux_2_28`` wheels, x86_64 or arm64. Every distribution is
pinned to the version installed where ``sluice package`` runs (the environment
``make test`` installs and tests), dependencies of dependencies included, and the
versions pip put into the zip are checked against those pins. The zip is reproducible:
entries sorted, fixed timestamps and modes, so Terraform's ``source_code_hash``
changes only when the content does.

Pure parts (which files, which requirements, size limits, the zip layout) are plain
functions; pip runs behind a small callable so tests can replace it.
"""

from __future__ import annotations

import ast
import email.parser
import importlib.metadata
import logging
import re
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path, PurePosixPath

from packaging.requirements import Requirement

from sluice.errors import ConfigurationError, FatalError

logger = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parent.parent

# AWS Lambda quotas (https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html).
UNZIPPED_LIMIT_BYTES = 262_144_000  # 250 MB: function code and layers, unzipped
DIRECT_UPLOAD_LIMIT_BYTES = 52_428_800  # 50 MB: zip uploaded directly, not through S3

# Amazon Linux 2023 runtimes (python3.12, python3.13) ship glibc 2.34.
LAMBDA_PYTHON_VERSION = "3.12"
LAMBDA_PYTHON_VERSIONS = ("3.12", "3.13")
MANYLINUX = "manylinux_2_28"

# Every first-party top-level package (the ones pyproject's setuptools finds).
FIRST_PARTY = frozenset(
    {
        "sluice",
        "schemas",
        "ingest_api",
        "producers",
        "firehose_transforms",
        "consumers",
        "warehouse",
        "deploy",
    }
)
# Files never shipped.
_SKIPPED_PARTS = frozenset({"__pycache__", "tests", ".mypy_cache", ".pytest_cache"})
_SKIPPED_SUFFIXES = (".pyc", ".pyo")
# Installed next to the packages by `pip install --target`, useless in Lambda.
_SKIPPED_TOP_LEVEL = frozenset({"bin"})
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)
_NAME_NORMALISER = re.compile(r"[-_.]+")
_REQUIREMENT_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


class PackageError(FatalError):
    """An artifact cannot be built (missing handler, pip failure, size over the limit)."""

    default_code = "package_error"


class Architecture(StrEnum):
    """Instruction set of a function (Terraform ``lambda_architecture``)."""

    X86_64 = "x86_64"
    ARM64 = "arm64"

    @property
    def machine(self) -> str:
        """``platform_machine`` of the Lambda host (``aarch64`` for arm64)."""
        return "aarch64" if self is Architecture.ARM64 else "x86_64"

    @property
    def platform(self) -> str:
        """The newest wheel platform tag the runtime takes (``manylinux_2_28_x86_64``)."""
        return f"{MANYLINUX}_{self.machine}"

    @property
    def platforms(self) -> tuple[str, ...]:
        """Every manylinux tag the runtime takes, newest first (pip's ``--platform``).

        pip does not expand ``manylinux_2_28`` to the older tags, so they are listed:
        glibc 2.28 down to 2.17 (2.5 on x86_64) and the legacy aliases.
        """
        oldest = 5 if self is Architecture.X86_64 else 17
        tags = [f"manylinux_2_{minor}_{self.machine}" for minor in range(28, oldest - 1, -1)]
        legacy = {"manylinux2014": 17, "manylinux2010": 12, "manylinux1": 5}
        tags += [f"{alias}_{self.machine}" for alias, minor in legacy.items() if minor >= oldest]
        return tuple(tags)


class FunctionName(StrEnum):
    """The Lambda functions Sluice deploys."""

    API = "api"
    TRANSFORM = "transform"
    LOADER = "loader"


@dataclass(frozen=True)
class FunctionSpec:
    """What one function runs: its handler (``module.function``)."""

    name: FunctionName
    handler: str

    @property
    def handler_module(self) -> str:
        """The module part of the handler (``ingest_api.lambda_function``)."""
        return self.handler.rsplit(".", 1)[0]

    @property
    def artifact_name(self) -> str:
        """File name of the zip (the Terraform example expects these names)."""
        return f"sluice-{self.name.value}.zip"


FUNCTIONS: Mapping[FunctionName, FunctionSpec] = {
    FunctionName.API: FunctionSpec(FunctionName.API, "ingest_api.lambda_function.lambda_handler"),
    FunctionName.TRANSFORM: FunctionSpec(
        FunctionName.TRANSFORM, "firehose_transforms.lambda_function.lambda_handler"
    ),
    FunctionName.LOADER: FunctionSpec(
        FunctionName.LOADER, "warehouse.lambda_function.lambda_handler"
    ),
}


@dataclass(frozen=True)
class PackageResult:
    """One built artifact."""

    function: FunctionName
    path: Path
    files: int
    unzipped_bytes: int
    zipped_bytes: int
    packages: tuple[str, ...]
    requirements: tuple[str, ...]
    warnings: tuple[str, ...] = field(default=())
    python_version: str = LAMBDA_PYTHON_VERSION
    architecture: Architecture = Architecture.X86_64
    versions: Mapping[str, str] = field(default_factory=dict)

    def as_json(self) -> dict[str, object]:
        """A JSON-ready description (``sluice package --json``)."""
        return {
            "function": self.function.value,
            "path": str(self.path),
            "files": self.files,
            "unzipped_bytes": self.unzipped_bytes,
            "zipped_bytes": self.zipped_bytes,
            "packages": list(self.packages),
            "requirements": list(self.requirements),
            "warnings": list(self.warnings),
            "python_version": self.python_version,
            "architecture": self.architecture.value,
            "versions": dict(self.versions),
        }


# --- Pure parts ----------------------------------------------------------------------


def normalise_name(name: str) -> str:
    """PEP 503 normalised distribution name (``Pydantic_Settings`` -> ``pydantic-settings``)."""
    return _NAME_NORMALISER.sub("-", name).lower()


def imported_modules(source: str, package: str | None = None) -> set[str]:
    """Module names imported anywhere in ``source`` (function-level imports too).

    ``from a import b`` yields ``a`` and ``a.b`` (``b`` may be a submodule). Relative
    imports are resolved against ``package`` (the importing module's package) and left
    out when it is not given.
    """
    tree = ast.parse(source)
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                if package is None:
                    continue
                parts = package.split(".")
                if node.level - 1 > len(parts) - 1:
                    continue
                base = ".".join(parts[: len(parts) - (node.level - 1)])
                module = f"{base}.{node.module}" if node.module else base
            elif node.module:
                module = node.module
            else:
                continue
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names if alias.name != "*")
    return names


def defines(source: str, name: str) -> bool:
    """Whether ``source`` binds ``name`` at module level (def, class, assignment, import)."""
    return name in _module_level_names(ast.parse(source))


def _module_level_names(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names.update(alias.asname or alias.name for alias in node.names)
    return names


def top_level(module: str) -> str:
    """``ingest_api.app`` -> ``ingest_api``."""
    return module.split(".", 1)[0]


def is_shipped(relative: PurePosixPath) -> bool:
    """Whether a file (path relative to the source root) belongs in an artifact."""
    if any(part in _SKIPPED_PARTS for part in relative.parts):
        return False
    if relative.parts and relative.parts[0] in _SKIPPED_TOP_LEVEL:
        return False
    return not relative.name.endswith(_SKIPPED_SUFFIXES)


def module_file(root: Path, module: str) -> Path | None:
    """The source file of a first-party ``module`` under ``root`` (None: not a module)."""
    base = root.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def package_closure(
    root: Path, start: str, first_party: Iterable[str] = FIRST_PARTY
) -> tuple[set[str], set[str]]:
    """What module ``start`` needs: first-party packages, and third-party top-level modules.

    Imports are followed module by module from ``start`` (a module of another package
    is followed only when something reached imports it), so an operator module such as
    a CLI that the handler never imports adds nothing. The standard library is left
    out of both sets.
    """
    known = frozenset(first_party)
    if module_file(root, start) is None:
        raise PackageError(f"first-party module {start!r} not found under {root}")
    packages: set[str] = set()
    external: set[str] = set()
    seen: set[str] = set()
    pending = [start]
    while pending:
        module = pending.pop()
        if module in seen:
            continue
        seen.add(module)
        path = module_file(root, module)
        if path is None:
            continue  # `from package import name` where name is not a submodule
        packages.add(top_level(module))
        # Importing a.b.c runs a/__init__.py and a/b/__init__.py first.
        parts = module.split(".")
        pending.extend(".".join(parts[:index]) for index in range(1, len(parts)))
        own_package = module if path.name == "__init__.py" else ".".join(parts[:-1])
        for name in imported_modules(path.read_text(encoding="utf-8"), own_package or None):
            head = top_level(name)
            if head in known:
                pending.append(name)
            elif head not in sys.stdlib_module_names and head != "__future__":
                external.add(head)
    return packages, external


def distributions_for(
    modules: Iterable[str], mapping: Mapping[str, Sequence[str]] | None = None
) -> tuple[set[str], set[str]]:
    """Normalised distribution names providing ``modules``, and the modules none provides.

    ``mapping`` is ``importlib.metadata.packages_distributions()`` (passed in by tests).
    """
    table = importlib.metadata.packages_distributions() if mapping is None else mapping
    found: set[str] = set()
    unknown: set[str] = set()
    for module in modules:
        dists = table.get(module)
        if dists:
            found.update(normalise_name(dist) for dist in dists)
        else:
            unknown.add(module)
    return found, unknown


def declared_requirements(pyproject: Path) -> dict[str, str]:
    """The project's runtime requirements, by normalised distribution name."""
    data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    requirements: dict[str, str] = {}
    for requirement in data.get("project", {}).get("dependencies", []):
        match = _REQUIREMENT_NAME.match(requirement)
        if match:
            requirements[normalise_name(match.group(1))] = requirement.strip()
    return requirements


def select_requirements(
    needed: Iterable[str], declared: Mapping[str, str]
) -> tuple[list[str], list[str]]:
    """Requirement strings to install for the ``needed`` distributions.

    Only the project's declared (direct) requirements are installed, with their
    specifiers and extras; pip brings their own dependencies. A needed distribution the
    project does not declare is returned in the second list (a transitive one, such as
    starlette under fastapi, or an optional import the code guards).
    """
    wanted = {normalise_name(name) for name in needed}
    selected = sorted(declared[name] for name in wanted if name in declared)
    undeclared = sorted(name for name in wanted if name not in declared)
    return selected, undeclared


def marker_environment(python_version: str, architecture: Architecture) -> dict[str, str]:
    """PEP 508 marker values of the Lambda runtime (CPython on Linux)."""
    full = python_version if python_version.count(".") == 2 else f"{python_version}.0"
    return {
        "python_version": ".".join(python_version.split(".")[:2]),
        "python_full_version": full,
        "implementation_name": "cpython",
        "implementation_version": full,
        "platform_python_implementation": "CPython",
        "sys_platform": "linux",
        "os_name": "posix",
        "platform_system": "Linux",
        "platform_machine": architecture.machine,
    }


DistributionLookup = Callable[[str], importlib.metadata.Distribution]


def pinned_requirements(
    requirements: Iterable[str],
    environment: Mapping[str, str],
    distribution: DistributionLookup = importlib.metadata.distribution,
) -> tuple[dict[str, str], list[str]]:
    """Pin ``requirements`` and everything they need to the versions installed here.

    Dependencies are followed through the installed metadata with the Lambda runtime's
    markers (``environment``) and the extras asked for. Returns normalised name ->
    installed version, and the requirements the Lambda runtime needs that are not
    installed here (a marker true on Lambda but false on this interpreter); those are
    left to pip and reported.
    """
    pins: dict[str, str] = {}
    missing: list[str] = []
    seen: set[tuple[str, frozenset[str]]] = set()
    pending = [Requirement(text) for text in requirements]
    while pending:
        requirement = pending.pop()
        name = normalise_name(requirement.name)
        extras = frozenset(requirement.extras)
        if (name, extras) in seen:
            continue
        seen.add((name, extras))
        try:
            dist = distribution(requirement.name)
        except importlib.metadata.PackageNotFoundError:
            missing.append(str(requirement))
            continue
        pins[name] = dist.version
        for text in dist.requires or ():
            child = Requirement(text)
            if child.marker is None or any(
                child.marker.evaluate({**environment, "extra": extra}) for extra in (extras or {""})
            ):
                pending.append(child)
    return dict(sorted(pins.items())), sorted(missing)


def installed_versions(target: Path) -> dict[str, str]:
    """Normalised name -> version of every distribution pip installed into ``target``."""
    versions: dict[str, str] = {}
    for metadata in sorted(target.glob("*.dist-info/METADATA")):
        headers = email.parser.HeaderParser().parsestr(metadata.read_text(encoding="utf-8"))
        if headers["Name"] and headers["Version"]:
            versions[normalise_name(headers["Name"])] = headers["Version"]
    return versions


def version_mismatches(pins: Mapping[str, str], installed: Mapping[str, str]) -> list[str]:
    """Pinned distributions whose version in the artifact differs (or that are absent)."""
    return [
        f"{name}: tested {version}, artifact {installed.get(name, 'absent')}"
        for name, version in sorted(pins.items())
        if installed.get(name) != version
    ]


def pip_install_command(
    requirements: Sequence[str],
    target: Path,
    *,
    python: str = sys.executable,
    platforms: Sequence[str] = Architecture.X86_64.platforms,
    python_version: str = LAMBDA_PYTHON_VERSION,
) -> list[str]:
    """The pip command installing ``requirements`` for the Lambda platform into ``target``.

    ``--platform manylinux_2_28_<arch>`` also accepts the older manylinux tags (pip
    expands it), never a newer glibc than the runtime has.
    """
    return [
        python,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--no-compile",
        "--target",
        str(target),
        *(option for platform in platforms for option in ("--platform", platform)),
        "--implementation",
        "cp",
        "--python-version",
        python_version,
        "--only-binary=:all:",
        "--upgrade",
        *requirements,
    ]


def collect_files(sources: Iterable[tuple[Path, str]]) -> dict[str, Path]:
    """Archive name -> file, for each ``(directory, prefix)``; later sources do not override.

    ``prefix`` is the archive path of the directory ('' for a dependency tree installed
    by pip, the package name for a first-party package).
    """
    files: dict[str, Path] = {}
    for directory, prefix in sources:
        for path in sorted(directory.rglob("*")):
            if not path.is_file():
                continue
            relative = PurePosixPath(path.relative_to(directory).as_posix())
            if not is_shipped(relative):
                continue
            name = str(PurePosixPath(prefix) / relative) if prefix else str(relative)
            files.setdefault(name, path)
    return files


def check_size(function: FunctionName, unzipped_bytes: int, zipped_bytes: int) -> list[str]:
    """Raise when the artifact is over Lambda's unzipped limit; warnings otherwise."""
    if unzipped_bytes > UNZIPPED_LIMIT_BYTES:
        raise PackageError(
            f"{function.value}: {human_size(unzipped_bytes)} unzipped is over Lambda's "
            f"{human_size(UNZIPPED_LIMIT_BYTES)} limit; drop dependencies or use a container image",
            code="package_too_large",
        )
    warnings: list[str] = []
    if zipped_bytes > DIRECT_UPLOAD_LIMIT_BYTES:
        warnings.append(
            f"{function.value}: the zip is {human_size(zipped_bytes)}, over the "
            f"{human_size(DIRECT_UPLOAD_LIMIT_BYTES)} direct upload limit: upload it to S3 "
            "and point the function at the object"
        )
    return warnings


def human_size(size: int) -> str:
    """``52428800`` -> ``50.0 MiB``; ``512`` -> ``512 B``."""
    if size < 1024:
        return f"{size} B"
    if size < 1024 * 1024:
        return f"{size / 1024:.1f} KiB"
    return f"{size / (1024 * 1024):.1f} MiB"


def write_zip(files: Mapping[str, Path], destination: Path) -> int:
    """Write a reproducible zip of ``files``; returns the unzipped size in bytes."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(destination.name + ".partial")
    unzipped = 0
    with zipfile.ZipFile(
        partial, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9
    ) as archive:
        for name in sorted(files):
            path = files[name]
            info = zipfile.ZipInfo(name, date_time=_ZIP_DATE)
            executable = path.stat().st_mode & 0o111
            info.external_attr = ((0o755 if executable else 0o644) | 0o100000) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            data = path.read_bytes()
            unzipped += len(data)
            archive.writestr(info, data)
    partial.replace(destination)
    return unzipped


# --- Building ------------------------------------------------------------------------

PipRunner = Callable[[list[str]], None]


def run_pip(command: list[str]) -> None:
    """Run pip; a failure becomes a :class:`PackageError` carrying pip's last lines."""
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        tail = "\n".join((completed.stderr or completed.stdout).strip().splitlines()[-15:])
        raise PackageError(
            f"pip could not install the Lambda dependencies ({MANYLINUX} wheels only):\n{tail}",
            code="pip_failed",
        )


def build(
    function: FunctionName,
    out_dir: Path,
    *,
    no_deps: bool = False,
    root: Path = PROJECT_ROOT,
    pip: PipRunner = run_pip,
    python_version: str = LAMBDA_PYTHON_VERSION,
    architecture: Architecture = Architecture.X86_64,
    module_map: Mapping[str, Sequence[str]] | None = None,
    distribution: DistributionLookup = importlib.metadata.distribution,
) -> PackageResult:
    """Build ``out_dir/sluice-<function>.zip`` and return what it holds.

    Raises:
        PackageError: the handler is missing, pip fails, a version in the artifact
            differs from the one installed here, or the artifact is over the limit.
    """
    spec = FUNCTIONS[function]
    handler_file = root / Path(*spec.handler_module.split(".")).with_suffix(".py")
    if not handler_file.is_file():
        raise PackageError(
            f"{function.value}: the handler module {spec.handler_module} "
            f"({handler_file.relative_to(root)}) does not exist",
            code="handler_missing",
        )
    handler_name = spec.handler.rsplit(".", 1)[1]
    if not defines(handler_file.read_text(encoding="utf-8"), handler_name):
        raise PackageError(
            f"{function.value}: {spec.handler_module} defines no {handler_name!r}",
            code="handler_missing",
        )
    packages, external = package_closure(root, spec.handler_module)
    # `sluice.errors` and `sluice.config` are imported everywhere; ensure they ship even
    # if a handler reaches them only dynamically.
    packages.add("sluice")
    needed, unknown = distributions_for(external, module_map)
    pyproject = root / "pyproject.toml"
    if not pyproject.is_file():
        raise ConfigurationError(f"{pyproject} not found", code="pyproject_missing")
    requirements, undeclared = select_requirements(needed, declared_requirements(pyproject))
    warnings = [
        f"{function.value}: imports {name!r} which no installed distribution provides"
        for name in sorted(unknown)
    ]
    if undeclared:
        logger.debug("%s: installed through other requirements: %s", function, undeclared)
    pins: dict[str, str] = {}
    versions: dict[str, str] = {}
    if not no_deps and requirements:
        pins, unpinned = pinned_requirements(
            requirements, marker_environment(python_version, architecture), distribution
        )
        warnings += [
            f"{function.value}: {text} is needed on Python {python_version} but not installed "
            "here, so its version is pip's choice, not a tested one"
            for text in unpinned
        ]

    with tempfile.TemporaryDirectory(prefix=f"sluice-package-{function.value}-") as tmp:
        dependencies = Path(tmp) / "dependencies"
        dependencies.mkdir()
        if pins:
            pip(
                pip_install_command(
                    [f"{name}=={version}" for name, version in pins.items()]
                    + [
                        text
                        for text in requirements
                        if normalise_name(Requirement(text).name) not in pins
                    ],
                    dependencies,
                    python_version=python_version,
                    platforms=architecture.platforms,
                )
            )
            versions = installed_versions(dependencies)
            mismatches = version_mismatches(pins, versions)
            if mismatches:
                raise PackageError(
                    f"{function.value}: the artifact would not run the tested versions: "
                    + "; ".join(mismatches),
                    code="version_mismatch",
                )
        sources = [(root / package, package) for package in sorted(packages)]
        # First-party code wins over anything pip put at the same path.
        files = collect_files([*sources, (dependencies, "")])
        destination = out_dir / spec.artifact_name
        unzipped = write_zip(files, destination)
    zipped = destination.stat().st_size
    try:
        warnings += check_size(function, unzipped, zipped)
    except PackageError:
        destination.unlink(missing_ok=True)
        raise
    return PackageResult(
        function=function,
        path=destination,
        files=len(files),
        unzipped_bytes=unzipped,
        zipped_bytes=zipped,
        packages=tuple(sorted(packages)),
        requirements=tuple(f"{name}=={version}" for name, version in pins.items()),
        warnings=tuple(warnings),
        python_version=python_version,
        architecture=architecture,
        versions=versions,
    )


def selected_functions(choice: str) -> list[FunctionName]:
    """``all`` or one function name -> the functions to build."""
    if choice == "all":
        return list(FunctionName)
    try:
        return [FunctionName(choice)]
    except ValueError as exc:
        raise PackageError(f"unknown function {choice!r}", code="unknown_function") from exc


def clean_out_dir(out_dir: Path) -> None:
    """Remove stale ``*.partial`` files a crashed build left in ``out_dir``."""
    if out_dir.is_dir():
        for partial in out_dir.glob("*.zip.partial"):
            partial.unlink()
    elif out_dir.exists():
        raise PackageError(f"{out_dir} exists and is not a directory", code="bad_out_dir")


__all__ = [
    "DIRECT_UPLOAD_LIMIT_BYTES",
    "FUNCTIONS",
    "UNZIPPED_LIMIT_BYTES",
    "Architecture",
    "FunctionName",
    "FunctionSpec",
    "PackageError",
    "PackageResult",
    "build",
    "check_size",
    "collect_files",
    "declared_requirements",
    "defines",
    "distributions_for",
    "imported_modules",
    "installed_versions",
    "is_shipped",
    "marker_environment",
    "package_closure",
    "pinned_requirements",
    "pip_install_command",
    "select_requirements",
    "selected_functions",
    "version_mismatches",
    "write_zip",
]
