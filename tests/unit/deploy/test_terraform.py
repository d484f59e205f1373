"""The Terraform tree parses, and every module's interface is documented and wired.

No terraform binary exists here: the checks run on the python-hcl2 parse of each file.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from deploy import tfmodules
from deploy.tfmodules import (
    ModuleInterface,
    module_directories,
    module_output_references,
    read_module,
    variable_references,
)

ROOT = tfmodules.TERRAFORM_ROOT
MODULE_DIRS = module_directories(ROOT)
ENVIRONMENT_DIRS = tfmodules.environment_directories(ROOT)
ALL_DIRS = [*MODULE_DIRS, *ENVIRONMENT_DIRS]
TF_FILES = sorted(ROOT.rglob("*.tf"))
REQUIRED_FILES = ("main.tf", "variables.tf", "outputs.tf", "versions.tf", "README.md")
EXPECTED_MODULES = {
    "workers",
    "api",
    "consumers",
    "delivery",
    "kms",
    "lambda",
    "monitoring",
    "network",
    "storage",
    "streaming",
    "warehouse",
}


def _ids(paths: list[Path]) -> list[str]:
    return [str(path.relative_to(ROOT)) for path in paths]


def _callers() -> list[tuple[Path, str]]:
    """Every (directory, module call name) in the tree."""
    return [
        (directory, name) for directory in ALL_DIRS for name in read_module(directory).module_calls
    ]


def _called(directory: Path, name: str) -> tuple[ModuleInterface, ModuleInterface]:
    caller = read_module(directory)
    call = caller.module_calls[name]
    target = (directory / call.source).resolve()
    assert target.is_dir(), f"{directory.name}: module {name} points at missing {call.source}"
    return caller, read_module(target)


def test_tree_has_the_expected_modules_and_an_example_environment() -> None:
    assert {path.name for path in MODULE_DIRS} >= EXPECTED_MODULES
    assert "example" in {path.name for path in ENVIRONMENT_DIRS}
    assert len(TF_FILES) >= 4 * len(EXPECTED_MODULES)


@pytest.mark.parametrize("path", TF_FILES, ids=_ids(TF_FILES))
def test_every_tf_file_parses(path: Path) -> None:
    document = tfmodules.load_tf(path)
    assert isinstance(document, dict)


def test_a_syntax_error_is_reported_with_the_file(tmp_path: Path) -> None:
    broken = tmp_path / "broken.tf"
    broken.write_text('variable "x" {\n  type = \n', encoding="utf-8")
    with pytest.raises(tfmodules.TerraformParseError, match=r"broken\.tf"):
        tfmodules.load_tf(broken)


@pytest.mark.parametrize("directory", MODULE_DIRS, ids=_ids(MODULE_DIRS))
def test_module_has_the_standard_files(directory: Path) -> None:
    missing = [name for name in REQUIRED_FILES if not (directory / name).is_file()]
    assert not missing, f"{directory.name} lacks {missing}"


@pytest.mark.parametrize("directory", ALL_DIRS, ids=_ids(ALL_DIRS))
def test_variables_have_descriptions_and_types(directory: Path) -> None:
    interface = read_module(directory)
    assert interface.variables, f"{directory.name} declares no variables"
    undocumented = [v.name for v in interface.variables.values() if not v.description]
    untyped = [v.name for v in interface.variables.values() if not v.type]
    assert not undocumented, f"{directory.name}: variables without description: {undocumented}"
    assert not untyped, f"{directory.name}: variables without type: {untyped}"


@pytest.mark.parametrize("directory", ALL_DIRS, ids=_ids(ALL_DIRS))
def test_outputs_have_descriptions(directory: Path) -> None:
    interface = read_module(directory)
    assert interface.outputs, f"{directory.name} declares no outputs"
    undocumented = [o.name for o in interface.outputs.values() if not o.description]
    assert not undocumented, f"{directory.name}: outputs without description: {undocumented}"


@pytest.mark.parametrize("directory", ALL_DIRS, ids=_ids(ALL_DIRS))
def test_every_variable_is_declared_and_used(directory: Path) -> None:
    declared = set(read_module(directory).variables)
    referenced = variable_references(directory)
    assert not referenced - declared, f"{directory.name}: undeclared {referenced - declared}"
    assert not declared - referenced, f"{directory.name}: unused {declared - referenced}"


CALLS = _callers()


@pytest.mark.parametrize(("directory", "name"), CALLS, ids=[f"{d.name}.{n}" for d, n in CALLS])
def test_module_calls_pass_existing_inputs_and_every_required_one(
    directory: Path, name: str
) -> None:
    caller, target = _called(directory, name)
    inputs = caller.module_calls[name].inputs
    unknown = inputs - set(target.variables)
    missing = target.required_variables - inputs
    assert not unknown, f"{directory.name}: module {name} gets unknown inputs {sorted(unknown)}"
    assert not missing, f"{directory.name}: module {name} misses required {sorted(missing)}"


@pytest.mark.parametrize("directory", ALL_DIRS, ids=_ids(ALL_DIRS))
def test_referenced_module_outputs_exist(directory: Path) -> None:
    caller = read_module(directory)
    for module_name, output in sorted(module_output_references(directory)):
        assert module_name in caller.module_calls, f"{directory.name}: no module {module_name}"
        _, target = _called(directory, module_name)
        assert output in target.outputs, f"{directory.name}: module.{module_name}.{output} missing"


def test_example_environment_uses_every_module() -> None:
    example = read_module(ROOT / "environments" / "example")
    used = {Path(call.source).name for call in example.module_calls.values()}
    # `lambda` is used by api, delivery and warehouse rather than by the environment.
    assert used | {"lambda"} >= EXPECTED_MODULES


def test_example_stream_backend_selects_with_count() -> None:
    text = tfmodules.source_text(ROOT / "modules" / "streaming")
    assert "count = local.is_kafka ? 1 : 0" in text
    assert "for_each = local.is_kinesis ? var.stream_names : {}" in text


@pytest.mark.parametrize("directory", ALL_DIRS, ids=_ids(ALL_DIRS))
def test_readme_lists_every_variable_and_output(directory: Path) -> None:
    readme = (directory / "README.md").read_text(encoding="utf-8")
    interface = read_module(directory)
    generated = tfmodules.render_interface(interface)
    assert generated in readme, (
        f"{directory.name}/README.md is stale: run `python -m deploy.tfmodules`"
    )
    for name in [*interface.variables, *interface.outputs]:
        assert f"`{name}`" in readme


def test_update_readme_replaces_only_the_generated_section() -> None:
    generated = tfmodules.render_interface(ModuleInterface(path=Path(".")))
    text = f"# Title\n\nProse.\n\n{tfmodules.BEGIN_MARKER}\nold\n{tfmodules.END_MARKER}\n\nTail.\n"
    updated = tfmodules.update_readme(text, generated)
    assert updated.startswith("# Title\n\nProse.\n\n")
    assert updated.endswith("\n\nTail.\n")
    assert "old" not in updated
    assert tfmodules.update_readme("# T\n", generated) == f"# T\n\n{generated}\n"


def test_plain_strips_quotes_and_block_markers() -> None:
    parsed = {
        '"name"': {
            "description": '"A thing."',
            "type": "string",
            "__is_block__": True,
            "__comments__": [{"value": "a comment"}],
        }
    }
    assert tfmodules.plain(parsed) == {"name": {"description": "A thing.", "type": "string"}}
    assert tfmodules.type_expression("${map(string)}") == "map(string)"


def test_check_mode_reports_nothing_stale() -> None:
    assert tfmodules.stale_readmes(ROOT) == []
    assert tfmodules.main(["--check", str(ROOT)]) == 0


def test_main_rewrites_a_stale_readme_and_check_reports_it(tmp_path: Path) -> None:
    import shutil

    root = tmp_path / "terraform"
    shutil.copytree(ROOT, root)
    readme = root / "modules" / "kms" / "README.md"
    readme.write_text("# Module `kms`\n\nProse only.\n", encoding="utf-8")
    assert tfmodules.main(["--check", str(root)]) == 1
    assert readme.read_text(encoding="utf-8") == "# Module `kms`\n\nProse only.\n"
    assert tfmodules.main([str(root)]) == 0
    text = readme.read_text(encoding="utf-8")
    assert text.startswith("# Module `kms`\n\nProse only.\n\n")
    assert "`deletion_window_in_days`" in text
    assert tfmodules.main(["--check", str(root)]) == 0
