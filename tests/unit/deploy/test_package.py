"""`sluice package`: file selection, requirements, size limits, reproducible zips."""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path, PurePosixPath

import pytest

from deploy import package
from deploy.package import FunctionName, PackageError
from sluice.cli import main as sluice_main

PYPROJECT = """
[project]
name = "fake"
dependencies = [
    "fastapi>=0.110",
    "psycopg[binary]>=3.1",
    "Pydantic_Settings>=2.2",
    "boto3>=1.34",
]
"""


def _write(path: Path, text: str = "") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A small project tree shaped like Sluice's."""
    root = tmp_path / "project"
    _write(root / "pyproject.toml", PYPROJECT)
    _write(root / "sluice" / "__init__.py")
    _write(root / "sluice" / "errors.py", "from __future__ import annotations\nimport json\n")
    _write(root / "ingest_api" / "__init__.py")
    _write(
        root / "ingest_api" / "lambda_function.py",
        "from __future__ import annotations\nfrom fastapi import FastAPI\n"
        "from sluice.errors import x\n\ndef lambda_handler(event, context):\n"
        "    import schemas.codec\n    from . import app\n",
    )
    _write(root / "ingest_api" / "cli.py", "import uvicorn\nimport consumers\n")
    _write(root / "ingest_api" / "__pycache__" / "app.cpython-311.pyc", "junk")
    _write(root / "sluice" / "demo.py", "import uvicorn\nimport consumers\n")
    _write(root / "schemas" / "__init__.py", "import psycopg\nimport pydantic_settings\n")
    _write(root / "schemas" / "codec.py", "from __future__ import annotations\nimport json\n")
    _write(root / "schemas" / "avro" / "event.avsc", '{"type": "record"}')
    _write(root / "consumers" / "__init__.py", "import redshift_connector\n")
    return root


MODULE_MAP = {
    "fastapi": ["fastapi"],
    "psycopg": ["psycopg"],
    "pydantic_settings": ["pydantic-settings"],
    "starlette": ["starlette"],
}


# --- pure parts ----------------------------------------------------------------------


def test_imported_modules_finds_function_level_imports() -> None:
    source = (
        "import os, json as j\nfrom a.b import c\nfrom . import sibling\n"
        "def f():\n    import lazy.mod\n    from .rel import x\n"
    )
    assert package.imported_modules(source) == {"os", "json", "a.b", "a.b.c", "lazy.mod"}


def test_imported_modules_resolves_relative_imports() -> None:
    source = "from . import sibling\nfrom .rel import x\nfrom ..up import y\n"
    assert package.imported_modules(source, "pkg.sub") == {
        "pkg.sub",
        "pkg.sub.sibling",
        "pkg.sub.rel",
        "pkg.sub.rel.x",
        "pkg.up",
        "pkg.up.y",
    }
    # Beyond the top-level package: ignored rather than guessed.
    assert package.imported_modules("from ... import z\n", "pkg") == set()


@pytest.mark.parametrize(
    ("relative", "shipped"),
    [
        ("ingest_api/app.py", True),
        ("schemas/avro/event.avsc", True),
        ("ingest_api/__pycache__/app.cpython-311.pyc", False),
        ("pkg/module.pyc", False),
        ("pkg/tests/test_x.py", False),
        ("bin/uvicorn", False),
        ("fastapi-0.110.dist-info/METADATA", True),
    ],
)
def test_is_shipped(relative: str, shipped: bool) -> None:
    assert package.is_shipped(PurePosixPath(relative)) is shipped


def test_package_closure_follows_only_what_the_handler_imports(project: Path) -> None:
    packages, external = package.package_closure(project, "ingest_api.lambda_function")
    assert packages == {"ingest_api", "sluice", "schemas"}
    # uvicorn and consumers are imported only by ingest_api/cli.py and sluice/demo.py,
    # which the handler never imports; schemas/__init__.py runs before schemas.codec.
    assert external == {"fastapi", "psycopg", "pydantic_settings"}


def test_package_closure_reports_a_missing_module(project: Path) -> None:
    with pytest.raises(PackageError, match="warehouse"):
        package.package_closure(project, "warehouse.lambda_function")


def test_module_file(project: Path) -> None:
    assert package.module_file(project, "schemas") == project / "schemas" / "__init__.py"
    assert package.module_file(project, "schemas.codec") == project / "schemas" / "codec.py"
    assert package.module_file(project, "schemas.nothing") is None


def test_distributions_for_maps_modules_and_reports_unknown_ones() -> None:
    found, unknown = package.distributions_for(
        ["fastapi", "pydantic_settings", "mystery"], MODULE_MAP
    )
    assert found == {"fastapi", "pydantic-settings"}
    assert unknown == {"mystery"}


def test_select_requirements_keeps_specifiers_and_extras(project: Path) -> None:
    declared = package.declared_requirements(project / "pyproject.toml")
    assert declared["pydantic-settings"] == "Pydantic_Settings>=2.2"
    selected, undeclared = package.select_requirements(
        ["psycopg", "fastapi", "starlette", "pydantic-settings"], declared
    )
    assert selected == ["Pydantic_Settings>=2.2", "fastapi>=0.110", "psycopg[binary]>=3.1"]
    assert undeclared == ["starlette"]


def test_pip_command_targets_the_lambda_platform(tmp_path: Path) -> None:
    command = package.pip_install_command(["fastapi>=0.110"], tmp_path, python="py")
    assert command[:4] == ["py", "-m", "pip", "install"]
    assert command[command.index("--target") + 1] == str(tmp_path)
    assert command[command.index("--platform") + 1] == "manylinux_2_28_x86_64"
    assert "manylinux2014_x86_64" in command
    assert command[command.index("--python-version") + 1] == "3.12"
    assert "--only-binary=:all:" in command
    assert command[-1] == "fastapi>=0.110"


def test_check_size_fails_over_the_unzipped_limit() -> None:
    with pytest.raises(PackageError, match=r"250\.0 MiB limit") as caught:
        package.check_size(FunctionName.API, package.UNZIPPED_LIMIT_BYTES + 1, 10)
    assert caught.value.code == "package_too_large"


def test_check_size_warns_over_the_direct_upload_limit() -> None:
    limit = package.UNZIPPED_LIMIT_BYTES
    assert package.check_size(FunctionName.API, limit, 1024) == []
    warnings = package.check_size(FunctionName.API, limit, package.DIRECT_UPLOAD_LIMIT_BYTES + 1)
    assert len(warnings) == 1
    assert "upload it to S3" in warnings[0]


def test_human_size() -> None:
    assert package.human_size(512) == "512 B"
    assert package.human_size(2048) == "2.0 KiB"
    assert package.human_size(package.DIRECT_UPLOAD_LIMIT_BYTES) == "50.0 MiB"


def test_write_zip_is_reproducible(tmp_path: Path) -> None:
    script = _write(tmp_path / "src" / "run.sh", "#!/bin/sh\n")
    script.chmod(0o755)
    files = {"b/data.txt": _write(tmp_path / "src" / "data.txt", "x" * 1000), "a/run.sh": script}
    first = tmp_path / "one" / "a.zip"
    second = tmp_path / "two" / "a.zip"
    assert package.write_zip(files, first) == 1000 + len("#!/bin/sh\n")
    package.write_zip(dict(reversed(list(files.items()))), second)
    assert first.read_bytes() == second.read_bytes()
    with zipfile.ZipFile(first) as archive:
        assert archive.namelist() == ["a/run.sh", "b/data.txt"]
        modes = {info.filename: (info.external_attr >> 16) & 0o777 for info in archive.infolist()}
    assert modes == {"a/run.sh": 0o755, "b/data.txt": 0o644}
    assert not list(tmp_path.rglob("*.partial"))


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("def lambda_handler(event, context):\n    pass\n", True),
        ("async def lambda_handler(event, context):\n    pass\n", True),
        ("lambda_handler = make()\n", True),
        ("lambda_handler: Handler = make()\n", True),
        ("from .impl import handle as lambda_handler\n", True),
        ("def other():\n    lambda_handler = 1\n", False),
    ],
)
def test_defines(source: str, expected: bool) -> None:
    assert package.defines(source, "lambda_handler") is expected


def test_build_fails_when_the_handler_function_is_missing(project: Path, tmp_path: Path) -> None:
    _write(project / "ingest_api" / "lambda_function.py", "def handler(event, context): ...\n")
    with pytest.raises(PackageError, match="defines no 'lambda_handler'"):
        package.build(FunctionName.API, tmp_path, root=project, no_deps=True)


def test_selected_functions() -> None:
    assert package.selected_functions("all") == list(FunctionName)
    assert package.selected_functions("loader") == [FunctionName.LOADER]
    with pytest.raises(PackageError):
        package.selected_functions("everything")


# --- build with a fake pip -----------------------------------------------------------


class FakeDistribution:
    """What ``pinned_requirements`` reads of an installed distribution."""

    def __init__(self, version: str, requires: list[str] | None = None) -> None:
        self.version = version
        self.requires = requires


INSTALLED = {
    "fastapi": FakeDistribution("0.115.0", ["starlette<0.39,>=0.37", "pydantic>=2"]),
    "starlette": FakeDistribution("0.38.6", ['typing-extensions; python_version < "3.10"']),
    "pydantic": FakeDistribution("2.9.2", ["pydantic-core==2.23.4"]),
    "pydantic-core": FakeDistribution("2.23.4"),
    "pydantic-settings": FakeDistribution("2.5.2", ["pydantic>=2"]),
    "psycopg": FakeDistribution(
        "3.2.3",
        [
            'psycopg-binary==3.2.3; implementation_name != "pypy" and extra == "binary"',
            'psycopg-c==3.2.3; extra == "c"',
            'tzdata; sys_platform == "win32"',
        ],
    ),
    "psycopg-binary": FakeDistribution("3.2.3"),
    "uvloop": FakeDistribution("0.21.0"),
}


def fake_distribution(name: str) -> FakeDistribution:
    try:
        return INSTALLED[package.normalise_name(name)]
    except KeyError:
        raise importlib.metadata.PackageNotFoundError(name) from None


def _dist_info(target: Path, name: str, version: str) -> None:
    _write(
        target / f"{name.replace('-', '_')}-{version}.dist-info" / "METADATA",
        f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n\nbody\n",
    )


def test_pins_follow_dependencies_with_the_lambda_markers_and_extras() -> None:
    environment = package.marker_environment("3.12", package.Architecture.ARM64)
    assert environment["platform_machine"] == "aarch64"
    pins, missing = package.pinned_requirements(
        ["fastapi>=0.110", "psycopg[binary]>=3.1", 'uvloop; sys_platform == "win32"'],
        environment,
        fake_distribution,
    )
    # typing-extensions (python < 3.10), psycopg-c (extra c), tzdata (win32) are not needed.
    assert pins == {
        "fastapi": "0.115.0",
        "psycopg": "3.2.3",
        "psycopg-binary": "3.2.3",
        "pydantic": "2.9.2",
        "pydantic-core": "2.23.4",
        "starlette": "0.38.6",
        "uvloop": "0.21.0",
    }
    assert missing == []
    _pins, missing = package.pinned_requirements(
        ['backports-zoneinfo; python_version < "3.13"'], environment, fake_distribution
    )
    assert missing == ['backports-zoneinfo; python_version < "3.13"']


def test_installed_versions_and_mismatches(tmp_path: Path) -> None:
    _dist_info(tmp_path, "Pydantic_Core", "2.23.4")
    _dist_info(tmp_path, "fastapi", "0.115.1")
    installed = package.installed_versions(tmp_path)
    assert installed == {"pydantic-core": "2.23.4", "fastapi": "0.115.1"}
    assert package.version_mismatches(
        {"pydantic-core": "2.23.4", "fastapi": "0.115.0", "starlette": "0.38.6"}, installed
    ) == ["fastapi: tested 0.115.0, artifact 0.115.1", "starlette: tested 0.38.6, artifact absent"]


def test_build_refuses_an_artifact_with_an_untested_version(project: Path, tmp_path: Path) -> None:
    def drifting_pip(command: list[str]) -> None:
        target = Path(command[command.index("--target") + 1])
        for pin in command[command.index("--upgrade") + 1 :]:
            name, _, version = pin.partition("==")
            _dist_info(target, name, "0.0.1" if name == "starlette" else version)

    with pytest.raises(
        PackageError, match=r"starlette: tested 0\.38\.6, artifact 0\.0\.1"
    ) as caught:
        package.build(
            FunctionName.API,
            tmp_path,
            root=project,
            pip=drifting_pip,
            module_map=MODULE_MAP,
            distribution=fake_distribution,
        )
    assert caught.value.code == "version_mismatch"
    assert not (tmp_path / "sluice-api.zip").exists()


def test_build_installs_declared_requirements_for_lambda(project: Path, tmp_path: Path) -> None:
    commands: list[list[str]] = []

    def fake_pip(command: list[str]) -> None:
        commands.append(command)
        target = Path(command[command.index("--target") + 1])
        for pin in command[command.index("--upgrade") + 1 :]:
            name, _, version = pin.partition("==")
            _dist_info(target, name, version)
        _write(target / "fastapi" / "__init__.py", "# fastapi\n")
        _write(target / "bin" / "fastapi", "#!/bin/sh\n")
        # A dependency must never replace a first-party module.
        _write(target / "sluice" / "errors.py", "# shadow\n")

    result = package.build(
        FunctionName.API,
        tmp_path / "dist",
        root=project,
        pip=fake_pip,
        module_map=MODULE_MAP,
        architecture=package.Architecture.ARM64,
        distribution=fake_distribution,
    )
    assert len(commands) == 1
    assert commands[0][commands[0].index("--platform") + 1] == "manylinux_2_28_aarch64"
    pins = commands[0][commands[0].index("--upgrade") + 1 :]
    assert pins == [
        "fastapi==0.115.0",
        "psycopg==3.2.3",
        "psycopg-binary==3.2.3",
        "pydantic==2.9.2",
        "pydantic-core==2.23.4",
        "pydantic-settings==2.5.2",
        "starlette==0.38.6",
    ]
    assert result.requirements == tuple(pins)
    assert result.versions["pydantic-core"] == "2.23.4"
    assert result.path == tmp_path / "dist" / "sluice-api.zip"
    assert result.packages == ("ingest_api", "schemas", "sluice")
    with zipfile.ZipFile(result.path) as archive:
        names = set(archive.namelist())
        assert archive.read("sluice/errors.py").startswith(b"from __future__")
    assert {
        "fastapi/__init__.py",
        "ingest_api/lambda_function.py",
        "schemas/avro/event.avsc",
    } <= names
    assert not any(name.startswith("bin/") or "__pycache__" in name for name in names)
    assert result.files == len(names)
    assert result.zipped_bytes == result.path.stat().st_size


def test_build_without_deps_never_runs_pip(project: Path, tmp_path: Path) -> None:
    def failing_pip(command: list[str]) -> None:
        raise AssertionError("pip must not run with no_deps")

    result = package.build(
        FunctionName.API,
        tmp_path,
        root=project,
        pip=failing_pip,
        no_deps=True,
        module_map=MODULE_MAP,
    )
    assert result.requirements == ()
    assert result.path.exists()


def test_build_reports_pip_failure(project: Path, tmp_path: Path) -> None:
    def broken_pip(command: list[str]) -> None:
        raise PackageError("pip could not install", code="pip_failed")

    with pytest.raises(PackageError, match="pip could not install"):
        package.build(
            FunctionName.API, tmp_path, root=project, pip=broken_pip, module_map=MODULE_MAP
        )
    assert not (tmp_path / "sluice-api.zip").exists()


def test_run_pip_turns_a_failure_into_a_package_error() -> None:
    with pytest.raises(PackageError, match="boom") as caught:
        package.run_pip([sys.executable, "-c", "import sys; sys.exit('boom')"])
    assert caught.value.code == "pip_failed"


def test_build_fails_clearly_when_the_handler_is_missing(project: Path, tmp_path: Path) -> None:
    with pytest.raises(PackageError, match=r"warehouse\.lambda_function") as caught:
        package.build(FunctionName.LOADER, tmp_path, root=project, no_deps=True)
    assert caught.value.code == "handler_missing"


def test_build_over_the_limit_fails_and_leaves_no_zip(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(package, "UNZIPPED_LIMIT_BYTES", 10)
    with pytest.raises(PackageError, match="over Lambda's"):
        package.build(FunctionName.API, tmp_path, root=project, no_deps=True, module_map=MODULE_MAP)
    assert not (tmp_path / "sluice-api.zip").exists()


def test_clean_out_dir_removes_partial_files(tmp_path: Path) -> None:
    _write(tmp_path / "sluice-api.zip.partial", "x")
    keep = _write(tmp_path / "sluice-api.zip", "x")
    package.clean_out_dir(tmp_path)
    assert keep.exists()
    assert not (tmp_path / "sluice-api.zip.partial").exists()
    with pytest.raises(PackageError):
        package.clean_out_dir(keep)


# --- a real artifact of this project -------------------------------------------------


@pytest.mark.parametrize("function", list(FunctionName), ids=lambda f: f.value)
def test_sluice_package_builds_a_real_zip_without_deps(
    function: FunctionName, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = package.FUNCTIONS[function]
    out = tmp_path / "dist"
    argv = ["package", "--out", str(out), "--function", function.value, "--no-deps", "--json"]
    assert sluice_main(argv) == 0
    [result] = json.loads(capsys.readouterr().out)
    assert result["function"] == function.value
    assert {"sluice", spec.handler_module.split(".")[0]} <= set(result["packages"])
    assert "deploy" not in result["packages"]  # nothing a handler imports
    assert result["requirements"] == []
    artifact = out / spec.artifact_name
    assert result["zipped_bytes"] == artifact.stat().st_size
    with zipfile.ZipFile(artifact) as archive:
        names = archive.namelist()
        assert archive.testzip() is None
    assert spec.handler_module.replace(".", "/") + ".py" in names
    if "schemas" in result["packages"]:
        assert any(name.startswith("schemas/") and name.endswith(".avsc") for name in names)
    assert not any("__pycache__" in name or name.endswith(".pyc") for name in names)

    # Unpacked as Lambda does (into /var/task), the handler imports from the artifact;
    # the third-party packages come from this venv (--no-deps).
    task = tmp_path / "task"
    with zipfile.ZipFile(artifact) as archive:
        archive.extractall(task)
    env = {key: value for key, value in os.environ.items() if not key.startswith("SLUICE_")}
    env["PYTHONPATH"] = str(task)
    module, attribute = spec.handler.rsplit(".", 1)
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            f"import {module} as m; print(m.__file__); assert callable(m.{attribute})",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        check=False,
        timeout=120,
    )
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.strip().startswith(str(task))


def test_terraform_deploys_the_handlers_and_artifacts_sluice_package_builds() -> None:
    from deploy import tfmodules

    modules = tfmodules.TERRAFORM_ROOT / "modules"
    source = "\n".join(
        tfmodules.source_text(modules / name) for name in ("api", "delivery", "warehouse")
    )
    handlers = set(re.findall(r'handler\s+=\s+"([\w.]+)"', source))
    assert handlers == {spec.handler for spec in package.FUNCTIONS.values()}
    example = tfmodules.source_text(tfmodules.TERRAFORM_ROOT / "environments" / "example")
    artifacts = set(re.findall(r"/(sluice-[a-z]+\.zip)\"", example))
    assert artifacts == {spec.artifact_name for spec in package.FUNCTIONS.values()}
    # The fixed Lambda entry points exist in the tree.
    for spec in package.FUNCTIONS.values():
        module = package.PROJECT_ROOT / (spec.handler_module.replace(".", "/") + ".py")
        assert package.defines(module.read_text(encoding="utf-8"), "lambda_handler"), module


def test_sluice_package_fails_clearly_over_the_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(package, "UNZIPPED_LIMIT_BYTES", 1024)
    argv = ["package", "--out", str(tmp_path), "--function", "api", "--no-deps"]
    assert sluice_main(argv) == 1
    error = capsys.readouterr().err
    assert "sluice package: error: api:" in error
    assert "over Lambda's 1.0 KiB limit" in error
    assert not list(tmp_path.glob("*.zip"))


def test_sluice_package_prints_a_size_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["package", "--out", str(tmp_path), "--function", "transform", "--no-deps"]
    assert sluice_main(argv) == 0
    table = capsys.readouterr().out
    assert "transform" in table
    assert "KiB" in table


def test_sluice_package_takes_the_runtime_and_architecture_in_a_fresh_process(
    tmp_path: Path,
) -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith("SLUICE_")}
    command = [sys.executable, "-m", "sluice.cli", "package", "--out", str(tmp_path)]
    built = subprocess.run(
        [
            *command,
            "--function",
            "transform",
            "--no-deps",
            "--json",
            "--arch",
            "arm64",
            "--python-version",
            "3.13",
        ],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=120,
    )
    assert built.returncode == 0, built.stderr
    [result] = json.loads(built.stdout)
    assert (result["architecture"], result["python_version"]) == ("arm64", "3.13")
    refused = subprocess.run(
        [*command, "--no-deps", "--python-version", "3.11"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=120,
    )
    assert refused.returncode == 2
    assert "3.12" in refused.stderr and "3.13" in refused.stderr
