"""Least privilege, checked on the Terraform source: every IAM statement is scoped.

`"*"` as a resource is allowed only for the few actions AWS offers no resource-level
permission for, each named here with its reason.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from deploy import tfmodules

MODULES = tfmodules.module_directories()
# sid -> why "*" is the only possible resource.
STAR_RESOURCE_ALLOWED = {
    "ManageOwnNetworkInterfaces": "Lambda creates the function's ENIs; no ARN exists before",
    "SendTraces": "X-Ray PutTraceSegments has no resource-level permissions",
    "PublishSluiceMetrics": "PutMetricData has no resource-level permissions (namespace condition)",
    "PullImageToken": "ecr:GetAuthorizationToken has no resource-level permissions",
}
# Documents passed as policy_json to the lambda module, merged into its own document.
MERGED_INTO_LAMBDA = {"api": "publish", "delivery": "transform", "warehouse": "loader"}


def _statements(body: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield from body.get("statement", [])
    for dynamic in body.get("dynamic", []):
        yield from dynamic.get("statement", {}).get("content", [])


def policy_documents(directory: Path) -> dict[str, list[dict[str, Any]]]:
    """``data.aws_iam_policy_document`` name -> its statements (static and dynamic)."""
    documents: dict[str, list[dict[str, Any]]] = {}
    for path in sorted(directory.glob("*.tf")):
        for entry in tfmodules.load_tf(path).get("data", []):
            for name, body in entry.get("aws_iam_policy_document", {}).items():
                documents[name] = list(_statements(body))
    return documents


def _all() -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (directory.name, document, statement)
        for directory in MODULES
        for document, statements in policy_documents(directory).items()
        for statement in statements
    ]


STATEMENTS = _all()
IDS = [f"{module}.{doc}.{st.get('sid', '?')}" for module, doc, st in STATEMENTS]


def test_policy_documents_were_found() -> None:
    assert len(STATEMENTS) > 40


@pytest.mark.parametrize(("module", "document", "statement"), STATEMENTS, ids=IDS)
def test_star_resources_only_where_aws_requires(
    module: str, document: str, statement: dict[str, Any]
) -> None:
    if statement.get("effect", "Allow") == "Deny" or "principals" in statement:
        return  # bucket policies and trust policies are checked below
    resources = statement.get("resources", [])
    assert resources, f"{module}.{document}: statement without resources"
    # A list literal, or an expression (a string) building the list from scoped ARNs.
    listed = resources if isinstance(resources, list) else [resources]
    if "*" in listed:
        assert statement.get("sid") in STAR_RESOURCE_ALLOWED, (
            f"{module}.{document}.{statement.get('sid')}: '*' resource not justified"
        )
    if statement.get("sid") == "PublishSluiceMetrics":
        assert statement.get("condition"), "PutMetricData must be limited to the namespace"


@pytest.mark.parametrize(("module", "document", "statement"), STATEMENTS, ids=IDS)
def test_allow_statements_name_their_actions(
    module: str, document: str, statement: dict[str, Any]
) -> None:
    if "principals" in statement:
        return  # trust and bucket policies: checked below
    assert statement.get("sid"), f"{module}.{document}: statement without sid"
    if statement.get("effect", "Allow") == "Deny":
        return
    for action in statement.get("actions", []):
        assert action != "*" and not action.endswith(":*"), (
            f"{module}.{document}.{statement['sid']}: wildcard action {action}"
        )


@pytest.mark.parametrize(("module", "document", "statement"), STATEMENTS, ids=IDS)
def test_principals_are_services_never_everyone_in_an_allow(
    module: str, document: str, statement: dict[str, Any]
) -> None:
    for principal in statement.get("principals", []):
        if statement.get("effect", "Allow") == "Allow":
            assert principal["type"] == "Service", f"{module}.{document}: {principal}"
            assert "*" not in principal["identifiers"]


def test_merged_documents_have_unique_sids() -> None:
    modules = tfmodules.TERRAFORM_ROOT / "modules"
    base = {st["sid"] for st in policy_documents(modules / "lambda")["execution"]}
    for caller, name in MERGED_INTO_LAMBDA.items():
        statements = policy_documents(modules / caller)[name]
        clash = base & {st["sid"] for st in statements}
        assert not clash, f"{caller}.{name} repeats {clash} of the lambda module"


def test_every_role_is_assumed_by_a_service() -> None:
    for directory in MODULES:
        for name, statements in policy_documents(directory).items():
            trust = [st for st in statements if "sts:AssumeRole" in st.get("actions", [])]
            for statement in trust:
                [principal] = statement["principals"]
                assert principal["type"] == "Service", f"{directory.name}.{name}"
