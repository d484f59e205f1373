output "lease_table_names" {
  description = "Lease / checkpoint table per <group>.<stream> (empty on Kafka, whose groups commit offsets)."
  value       = { for key, table in aws_dynamodb_table.leases : key => table.name }
}

output "lease_table_arns" {
  description = "ARN of each lease / checkpoint table, per <group>.<stream>."
  value       = { for key, table in aws_dynamodb_table.leases : key => table.arn }
}

output "dlq_name" {
  description = "Name of the dead-letter stream / topic."
  value       = var.dlq_name
}

output "dlq_arn" {
  description = "ARN of the dead-letter Kinesis stream, or IAM ARN of the DLQ topic."
  value       = local.dlq_arn
}

output "dlq_kinesis_stream_name" {
  description = "Name of the dead-letter Kinesis stream (null on Kafka)."
  value       = local.is_kafka ? null : aws_kinesis_stream.dlq[0].name
}

output "consumer_role_arn" {
  description = "Role of the consumer processes."
  value       = aws_iam_role.consumer.arn
}
