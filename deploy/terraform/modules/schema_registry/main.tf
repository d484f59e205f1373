# AWS Glue Schema Registry for the event contract: one registry, one schema per stream
# (the name AWS's serializers use by default), Avro, FULL_ALL compatibility. Terraform
# creates each schema with its first version and then leaves the definition alone:
# later versions are registered in order by `sluice schemas register` (deploy role),
# which checks compatibility first and reports Glue's own refusals.

data "aws_partition" "current" {}
data "aws_region" "current" {}
data "aws_caller_identity" "current" {}

locals {
  registry_arn = "arn:${data.aws_partition.current.partition}:glue:${data.aws_region.current.name}:${data.aws_caller_identity.current.account_id}:registry/${var.name}"
  schema_arns  = "arn:${data.aws_partition.current.partition}:glue:${data.aws_region.current.name}:${data.aws_caller_identity.current.account_id}:schema/${var.name}/*"
}

resource "aws_glue_registry" "this" {
  registry_name = var.name
  description   = "Avro schemas of the Sluice event contract (schemas/avro)"
  tags          = var.tags
}

resource "aws_glue_schema" "this" {
  for_each = var.schemas

  schema_name       = each.key
  registry_arn      = aws_glue_registry.this.arn
  data_format       = "AVRO"
  compatibility     = var.compatibility
  schema_definition = each.value
  description       = "Values of stream ${each.key}"
  tags              = var.tags

  lifecycle {
    # New versions come from `sluice schemas register`, in order; Terraform would
    # otherwise register whatever text it holds as the next version.
    ignore_changes = [schema_definition]
  }
}

# Readers: GetSchemaVersion resolves the version UUID in a value's header; the API also
# finds the id of each version it writes (GetSchemaByDefinition, GetSchema).
data "aws_iam_policy_document" "read" {
  statement {
    sid       = "ReadSchemaVersions"
    actions   = ["glue:GetSchemaVersion", "glue:GetSchemaByDefinition", "glue:GetSchema"]
    resources = [local.registry_arn, local.schema_arns]
  }
}

resource "aws_iam_role_policy" "read" {
  count = length(var.reader_role_arns)

  name   = "${var.name}-schema-registry-read"
  role   = element(split("/", var.reader_role_arns[count.index]), length(split("/", var.reader_role_arns[count.index])) - 1)
  policy = data.aws_iam_policy_document.read.json
}

# Registration, for the deploy role only.
data "aws_iam_policy_document" "register" {
  statement {
    sid = "RegisterSchemaVersions"
    actions = [
      "glue:GetRegistry",
      "glue:GetSchema",
      "glue:GetSchemaByDefinition",
      "glue:GetSchemaVersion",
      "glue:CreateSchema",
      "glue:RegisterSchemaVersion",
      "glue:UpdateSchema",
    ]
    resources = [local.registry_arn, local.schema_arns]
  }
}

resource "aws_iam_role_policy" "register" {
  count = var.registrar_role_arn == null ? 0 : 1

  name   = "${var.name}-schema-registry-register"
  role   = element(split("/", var.registrar_role_arn), length(split("/", var.registrar_role_arn)) - 1)
  policy = data.aws_iam_policy_document.register.json
}
