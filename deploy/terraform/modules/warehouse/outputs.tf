output "workgroup_name" {
  description = "Name of the Redshift Serverless workgroup."
  value       = aws_redshiftserverless_workgroup.this.workgroup_name
}

output "endpoint_address" {
  description = "Host name of the workgroup endpoint (SSL required)."
  value       = aws_redshiftserverless_workgroup.this.endpoint[0].address
}

output "endpoint_port" {
  description = "Port of the workgroup endpoint."
  value       = aws_redshiftserverless_workgroup.this.endpoint[0].port
}

output "database_name" {
  description = "Database of the warehouse tables."
  value       = var.database_name
}

output "admin_secret_arn" {
  description = "Secrets Manager secret holding the generated admin password."
  value       = aws_redshiftserverless_namespace.this.admin_password_secret_arn
}

output "copy_role_arn" {
  description = "Role Redshift assumes for COPY from the zone."
  value       = aws_iam_role.copy.arn
}

output "loader_function_name" {
  description = "Name of the loader function."
  value       = module.loader.function_name
}

output "loads_queue_url" {
  description = "SQS queue of the clean prefix's ObjectCreated notifications (SLUICE_WAREHOUSE_LOAD_QUEUE_URL)."
  value       = aws_sqs_queue.loads.id
}

output "loads_queue_arn" {
  description = "ARN of the loader's notification queue."
  value       = aws_sqs_queue.loads.arn
}

output "loader_dlq_arn" {
  description = "SQS queue receiving notifications the loader failed on after 5 receives."
  value       = aws_sqs_queue.loader_dlq.arn
}

output "loader_dlq_name" {
  description = "Name of the loader's dead-letter queue."
  value       = aws_sqs_queue.loader_dlq.name
}
