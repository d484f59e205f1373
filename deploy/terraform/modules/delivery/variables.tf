variable "name" {
  description = "Name prefix of the environment."
  type        = string
}

variable "backend" {
  description = "Source of the delivery streams: kafka (MSK topic) or kinesis (Kinesis stream)."
  type        = string

  validation {
    condition     = contains(["kafka", "kinesis"], var.backend)
    error_message = "backend must be kafka or kinesis."
  }
}

variable "stream_names" {
  description = "Topic / stream name per event type; one delivery stream is created per entry."
  type        = map(string)
}

variable "kinesis_stream_arns" {
  description = "Source Kinesis stream ARN per event type (backend = kinesis)."
  type        = map(string)
  default     = {}
}

variable "kafka_cluster_arn" {
  description = "Source MSK cluster (backend = kafka)."
  type        = string
  default     = null
}

variable "kafka_topic_arns" {
  description = "IAM ARN of each source topic, per event type (backend = kafka)."
  type        = map(string)
  default     = {}
}

variable "bucket_arn" {
  description = "ARN of the S3 zone bucket."
  type        = string
}

variable "raw_prefix" {
  description = "Zone prefix of the raw source backup."
  type        = string
  default     = "raw/"
}

variable "clean_prefix" {
  description = "Zone prefix of the cleaned records."
  type        = string
  default     = "clean/"
}

variable "error_prefix" {
  description = "Zone prefix of failed records (Firehose error output)."
  type        = string
  default     = "errors/"
}

variable "raw_backup_enabled" {
  description = "Also back up the untransformed source records under raw_prefix."
  type        = bool
  default     = false
}

variable "buffering_size_mb" {
  description = "Firehose S3 buffering hint: MiB buffered before an object is written (64 to 128 with dynamic partitioning)."
  type        = number
  default     = 64

  validation {
    condition     = var.buffering_size_mb >= 64 && var.buffering_size_mb <= 128
    error_message = "buffering_size_mb must be between 64 and 128 (dynamic partitioning needs at least 64)."
  }
}

variable "partitioning_retry_seconds" {
  description = "How long Firehose retries delivering a dynamically partitioned batch to S3, in seconds."
  type        = number
  default     = 300
}

variable "buffering_interval_seconds" {
  description = "Firehose S3 buffering hint: seconds buffered before an object is written (0 to 900)."
  type        = number
  default     = 300

  validation {
    condition     = var.buffering_interval_seconds >= 0 && var.buffering_interval_seconds <= 900
    error_message = "buffering_interval_seconds must be between 0 and 900."
  }
}

variable "transform_buffer_size_mb" {
  description = "Payload size Firehose hands the transform per invocation, in MB (0.2 to 3)."
  type        = number
  default     = 1
}

variable "transform_buffer_interval_seconds" {
  description = "Seconds Firehose buffers before invoking the transform (60 to 900)."
  type        = number
  default     = 60
}

variable "transform_retries" {
  description = "Times Firehose retries a failed transform invocation before writing the batch to the error prefix."
  type        = number
  default     = 3
}

variable "transform_package_path" {
  description = "Zip of the transform function built by `sluice package --function transform`."
  type        = string
}

variable "transform_environment" {
  description = "SLUICE_* settings of the transform function (no secret values)."
  type        = map(string)
}

variable "transform_secret_arns" {
  description = "Secrets Manager secrets the transform may read."
  type        = list(string)
  default     = []
}

variable "transform_memory_mb" {
  description = "Memory of the transform function, in MB."
  type        = number
  default     = 1024
}

variable "transform_timeout_seconds" {
  description = "Timeout of the transform function, in seconds (Firehose allows up to 300)."
  type        = number
  default     = 120
}

variable "transform_reserved_concurrency" {
  description = "Reserved concurrent executions of the transform function; null: unreserved."
  type        = number
  default     = null
}

variable "kms_key_arn" {
  description = "Customer managed KMS key (S3 objects, logs, environment variables)."
  type        = string
}

variable "subnet_ids" {
  description = "Private subnets of the transform function."
  type        = list(string)
}

variable "security_group_ids" {
  description = "Security groups of the transform function."
  type        = list(string)
}

variable "log_retention_days" {
  description = "Retention of the Firehose and transform log groups, in days."
  type        = number
  default     = 365
}

variable "tags" {
  description = "Tags applied to every resource of the module."
  type        = map(string)
  default     = {}
}

variable "lambda_platform" {
  description = "Runtime and architecture of the function; must match how the artifact was built (`sluice package --python-version --arch`)."
  type = object({
    runtime      = string
    architecture = string
  })
  default = {
    runtime      = "python3.12"
    architecture = "x86_64"
  }
}
