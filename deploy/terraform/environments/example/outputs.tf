output "api_endpoint" {
  description = "Base URL of the ingest API."
  value       = module.api.api_endpoint
}

output "zone_bucket" {
  description = "Name of the S3 zone bucket."
  value       = module.storage.bucket_name
}

output "stream_names" {
  description = "Topic / stream name per event type."
  value       = module.streaming.stream_names
}

output "kafka_bootstrap_brokers" {
  description = "SASL/IAM bootstrap brokers of MSK (empty on Kinesis)."
  value       = module.streaming.kafka_bootstrap_brokers
}

output "delivery_stream_names" {
  description = "Firehose delivery stream per event type."
  value       = module.delivery.delivery_stream_names
}

output "lease_table_names" {
  description = "DynamoDB lease / checkpoint tables of the consumer groups (Kinesis)."
  value       = module.consumers.lease_table_names
}

output "consumer_role_arn" {
  description = "Role to run `sluice consume` with."
  value       = module.consumers.consumer_role_arn
}

output "warehouse_endpoint" {
  description = "Host name of the Redshift Serverless workgroup."
  value       = module.warehouse.endpoint_address
}

output "warehouse_admin_secret_arn" {
  description = "Secret holding the warehouse admin password."
  value       = module.warehouse.admin_secret_arn
}

output "alarm_topic_arn" {
  description = "SNS topic of every alarm."
  value       = module.monitoring.alarm_topic_arn
}

output "dashboard_name" {
  description = "CloudWatch dashboard of the path."
  value       = module.monitoring.dashboard_name
}

output "sluice_env" {
  description = "Non-secret SLUICE_* settings of the workers, for operators running the sluice command against this environment."
  value       = local.worker_env
}

output "image_repository_url" {
  description = "ECR repository to push the application image to."
  value       = module.workers.repository_url
}

output "workers_cluster_name" {
  description = "ECS cluster of the consumer groups and the zone loader."
  value       = module.workers.cluster_name
}

output "warehouse_dsn_secret_arn" {
  description = "Secret to put the workers' SLUICE_WAREHOUSE_DSN into."
  value       = aws_secretsmanager_secret.warehouse_dsn.arn
}

output "api_keys_ssm_path" {
  description = "Parameter Store path of the API key records (SLUICE_API_KEYS_SSM_PATH for `sluice api keys create --store ssm`)."
  value       = local.api_keys_ssm_path
}

output "kms_key_arn" {
  description = "The environment's KMS key (SLUICE_API_KEYS_SSM_KMS_KEY: it encrypts the API key records)."
  value       = module.kms.key_arn
}
