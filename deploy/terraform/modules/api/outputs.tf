output "api_id" {
  description = "Id of the HTTP API (dimension ApiId of its metrics)."
  value       = aws_apigatewayv2_api.this.id
}

output "api_endpoint" {
  description = "Base URL of the ingest API."
  value       = aws_apigatewayv2_api.this.api_endpoint
}

output "stage_name" {
  description = "Name of the stage (dimension Stage of its metrics)."
  value       = aws_apigatewayv2_stage.this.name
}

output "function_name" {
  description = "Name of the ingest function."
  value       = module.function.function_name
}

output "function_role_arn" {
  description = "Execution role of the ingest function."
  value       = module.function.role_arn
}

output "access_log_group_name" {
  description = "Log group of the stage's access log."
  value       = aws_cloudwatch_log_group.access.name
}
