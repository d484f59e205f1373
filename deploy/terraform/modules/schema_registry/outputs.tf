output "registry_name" {
  description = "Name of the Glue registry (SLUICE_SCHEMA_REGISTRY_NAME)."
  value       = aws_glue_registry.this.registry_name
}

output "registry_arn" {
  description = "ARN of the Glue registry."
  value       = aws_glue_registry.this.arn
}

output "schema_arns" {
  description = "Schema name -> ARN of the Glue schema."
  value       = { for name, schema in aws_glue_schema.this : name => schema.arn }
}

output "read_policy_json" {
  description = "IAM policy document of the readers (glue:GetSchemaVersion and the lookups of the versions written)."
  value       = data.aws_iam_policy_document.read.json
}

output "register_policy_json" {
  description = "IAM policy document of the registrar (deploy) role."
  value       = data.aws_iam_policy_document.register.json
}
