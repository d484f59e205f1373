variable "name" {
  description = "Name prefix of the environment."
  type        = string
}

variable "backend" {
  description = "Stream backend: kafka (DLQ is a topic on the cluster) or kinesis (DLQ is a Kinesis stream created here)."
  type        = string

  validation {
    condition     = contains(["kafka", "kinesis"], var.backend)
    error_message = "backend must be kafka or kinesis."
  }
}

variable "consumer_groups" {
  description = "Consumer groups that run on Kinesis (SLUICE_CONSUMER_GROUP values); each gets one lease table per consumed stream."
  type        = list(string)
  default     = ["sluice-warehouse"]
}

variable "consumed_streams" {
  description = "Streams the consumer groups read (the event streams)."
  type        = list(string)
  default     = []
}

variable "lease_table_prefix" {
  description = "Lease tables are named <prefix><group>.<stream>, as the consumers name them when SLUICE_CONSUMER_LEASE_TABLE is unset."
  type        = string
  default     = "sluice-leases-"
}

variable "lease_table_hash_key" {
  description = "Partition key attribute of the lease tables, as the consumers create them when missing."
  type        = string
  default     = "leaseKey"
}

variable "deletion_protection" {
  description = "Protect the lease tables against deletion."
  type        = bool
  default     = true
}

variable "dlq_name" {
  description = "Name of the dead-letter stream / topic (SLUICE_STREAM_DLQ)."
  type        = string
}

variable "dlq_retention_hours" {
  description = "How long dead letters stay on the Kinesis DLQ stream, in hours."
  type        = number
  default     = 168
}

variable "kinesis_stream_arns" {
  description = "Event streams the consumers read (backend = kinesis)."
  type        = list(string)
  default     = []
}

variable "kafka_cluster_arn" {
  description = "MSK cluster of the topics (backend = kafka)."
  type        = string
  default     = null
}

variable "kafka_topic_arns" {
  description = "IAM ARNs of the event topics the consumers read (backend = kafka)."
  type        = list(string)
  default     = []
}

variable "kafka_topic_arn_prefix" {
  description = "Topic ARN prefix of the cluster, for the DLQ topic (backend = kafka)."
  type        = string
  default     = null
}

variable "kafka_group_arn_prefix" {
  description = "Consumer group ARN prefix of the cluster (backend = kafka)."
  type        = string
  default     = null
}

variable "consumer_group_prefix" {
  description = "Consumer groups the role may join and commit are those whose id starts with this."
  type        = string
  default     = "sluice-"
}

variable "consumer_principal_services" {
  description = "Services allowed to assume the consumer role (where `sluice consume` runs)."
  type        = list(string)
  default     = ["ecs-tasks.amazonaws.com"]
}

variable "metric_namespace" {
  description = "CloudWatch namespace of the consumers' metrics (SLUICE_CONSUMER_EMF_NAMESPACE)."
  type        = string
  default     = "Sluice/Consumers"
}

variable "warehouse_workgroup_arn" {
  description = "Redshift Serverless workgroup a warehouse sink writes to (null when none)."
  type        = string
  default     = null
}

variable "secret_arns" {
  description = "Secrets the consumers may read."
  type        = list(string)
  default     = []
}

variable "kms_key_arn" {
  description = "Customer managed KMS key (lease table, DLQ stream)."
  type        = string
}

variable "tags" {
  description = "Tags applied to every resource of the module."
  type        = map(string)
  default     = {}
}
