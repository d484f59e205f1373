output "backend" {
  description = "The stream backend of the environment (kafka or kinesis)."
  value       = var.backend
}

output "stream_names" {
  description = "Topic / stream name per event type."
  value       = var.stream_names
}

output "kinesis_stream_arns" {
  description = "Kinesis stream ARN per event type (empty on Kafka)."
  value       = { for event_type, stream in aws_kinesis_stream.this : event_type => stream.arn }
}

output "msk_cluster_arn" {
  description = "ARN of the MSK cluster (null on Kinesis)."
  value       = local.cluster_arn
}

output "kafka_topic_arns" {
  description = "IAM resource ARN of each topic, per event type (empty on Kinesis)."
  value       = local.is_kafka ? { for event_type, topic in var.stream_names : event_type => "${local.topic_arn_prefix}/${topic}" } : {}
}

output "kafka_topic_arn_prefix" {
  description = "Topic ARN prefix of the cluster (append /<topic>); null on Kinesis."
  value       = local.topic_arn_prefix
}

output "kafka_group_arn_prefix" {
  description = "Consumer group ARN prefix of the cluster (append /<group>); null on Kinesis."
  value       = local.group_arn_prefix
}

output "kafka_bootstrap_brokers" {
  description = "SASL/IAM bootstrap brokers (SLUICE_KAFKA_BOOTSTRAP_SERVERS); empty on Kinesis."
  value       = local.is_kafka ? aws_msk_cluster.this[0].bootstrap_brokers_sasl_iam : ""
}

output "msk_security_group_id" {
  description = "Security group of the MSK brokers (null on Kinesis)."
  value       = local.is_kafka ? aws_security_group.msk[0].id : null
}

output "msk_cluster_name" {
  description = "Name of the MSK cluster (dimension \"Cluster Name\" of AWS/Kafka metrics); null on Kinesis."
  value       = local.is_kafka ? aws_msk_cluster.this[0].cluster_name : null
}
