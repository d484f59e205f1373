output "delivery_stream_names" {
  description = "Firehose delivery stream name per event type."
  value       = { for event_type, stream in aws_kinesis_firehose_delivery_stream.this : event_type => stream.name }
}

output "delivery_stream_arns" {
  description = "Firehose delivery stream ARN per event type."
  value       = { for event_type, stream in aws_kinesis_firehose_delivery_stream.this : event_type => stream.arn }
}

output "transform_function_name" {
  description = "Name of the transform function."
  value       = module.transform.function_name
}

output "transform_function_arn" {
  description = "ARN of the transform function."
  value       = module.transform.function_arn
}

output "transform_role_arn" {
  description = "Role of the transform function (it resolves schema ids through the registry)."
  value       = module.transform.role_arn
}

output "firehose_role_arn" {
  description = "Role Firehose assumes to read the source and write the zone."
  value       = aws_iam_role.firehose.arn
}

output "firehose_log_group_name" {
  description = "Log group of the delivery streams' error logs."
  value       = aws_cloudwatch_log_group.firehose.name
}
