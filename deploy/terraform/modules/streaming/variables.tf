variable "name" {
  description = "Name prefix of the environment."
  type        = string
}

variable "backend" {
  description = "Stream backend of the environment: kafka (Amazon MSK) or kinesis (Kinesis Data Streams). Matches SLUICE_STREAM_BACKEND."
  type        = string

  validation {
    condition     = contains(["kafka", "kinesis"], var.backend)
    error_message = "backend must be kafka or kinesis."
  }
}

variable "stream_names" {
  description = "Topic / stream name per event type (keys financial-transaction and insurance-claim)."
  type        = map(string)

  validation {
    condition     = alltrue([for name in values(var.stream_names) : can(regex("^[A-Za-z0-9._-]{1,128}$", name))])
    error_message = "Stream names may only contain letters, digits, '.', '_' and '-'."
  }
}

variable "kms_key_arn" {
  description = "Customer managed KMS key for data at rest (MSK storage, Kinesis records, broker logs)."
  type        = string
}

variable "retention_hours" {
  description = "How long records stay on the stream, in hours (replay window)."
  type        = number
  default     = 168
}

variable "vpc_id" {
  description = "VPC of the MSK brokers (unused for Kinesis)."
  type        = string
}

variable "subnet_ids" {
  description = "Private subnets of the MSK brokers, one per availability zone (unused for Kinesis)."
  type        = list(string)
}

variable "client_security_groups" {
  description = "Security groups allowed to reach the brokers on the IAM/TLS port 9098, by a static label (the ids may be known only after apply)."
  type        = map(string)
  default     = {}
}

variable "kafka_version" {
  description = "Apache Kafka version of the MSK cluster."
  type        = string
  default     = "3.6.0"
}

variable "kafka_instance_type" {
  description = "MSK broker instance type."
  type        = string
  default     = "kafka.m7g.large"
}

variable "kafka_broker_count" {
  description = "Number of MSK brokers (a multiple of the number of subnets)."
  type        = number
  default     = 3
}

variable "kafka_volume_size_gb" {
  description = "EBS storage per broker, in GiB."
  type        = number
  default     = 100
}

variable "kafka_partitions" {
  description = "Default partition count of a new topic."
  type        = number
  default     = 12
}

variable "kinesis_stream_mode" {
  description = "Kinesis capacity mode: ON_DEMAND or PROVISIONED."
  type        = string
  default     = "ON_DEMAND"

  validation {
    condition     = contains(["ON_DEMAND", "PROVISIONED"], var.kinesis_stream_mode)
    error_message = "kinesis_stream_mode must be ON_DEMAND or PROVISIONED."
  }
}

variable "kinesis_shard_count" {
  description = "Shards per stream when kinesis_stream_mode is PROVISIONED."
  type        = number
  default     = 2
}

variable "log_retention_days" {
  description = "Retention of the MSK broker log group, in days."
  type        = number
  default     = 365
}

variable "tags" {
  description = "Tags applied to every resource of the module."
  type        = map(string)
  default     = {}
}
