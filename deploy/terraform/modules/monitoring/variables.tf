variable "name" {
  description = "Name prefix of the environment."
  type        = string
}

variable "backend" {
  description = "Stream backend (kafka or kinesis); Kinesis-only alarms exist on kinesis."
  type        = string

  validation {
    condition     = contains(["kafka", "kinesis"], var.backend)
    error_message = "backend must be kafka or kinesis."
  }
}

variable "custom_metrics" {
  description = "Namespace and names of the metrics the Sluice components emit (embedded metric format); the one place to align them with the code."
  type = object({
    namespace            = string
    consumer_lag_records = string
    consumer_lag_seconds = string
    dlq_records          = string
    consumer_records     = string
  })
  default = {
    namespace            = "Sluice/Consumers"
    consumer_lag_records = "ConsumerLagRecords"
    consumer_lag_seconds = "ConsumerLagSeconds"
    dlq_records          = "DeadLetters"
    consumer_records     = "Records"
  }
}

variable "thresholds" {
  description = "Alarm thresholds: consumer lag (records, seconds), Kinesis iterator age (ms), Firehose data freshness (s), API 5xx per 5 minutes, API 4xx percent."
  type = object({
    consumer_lag_records       = optional(number, 10000)
    consumer_lag_seconds       = optional(number, 300)
    iterator_age_ms            = optional(number, 300000)
    firehose_freshness_seconds = optional(number, 900)
    api_5xx                    = optional(number, 5)
    api_4xx_percent            = optional(number, 20)
  })
  default = {}
}

variable "evaluation_periods" {
  description = "Consecutive breaching periods before a lag, freshness or rate alarm fires."
  type        = number
  default     = 5
}

variable "kinesis_stream_names" {
  description = "Event stream name per event type (backend = kinesis; iterator age alarms)."
  type        = map(string)
  default     = {}
}

variable "dlq_kinesis_stream_name" {
  description = "Name of the dead-letter Kinesis stream (backend = kinesis)."
  type        = string
  default     = null
}

variable "msk_cluster_name" {
  description = "Name of the MSK cluster (backend = kafka; lag and DLQ alarms)."
  type        = string
  default     = null
}

variable "dlq_name" {
  description = "Name of the dead-letter topic / stream."
  type        = string
}

variable "zone_bucket_name" {
  description = "Name of the S3 zone bucket."
  type        = string
}

variable "error_metrics_filter_id" {
  description = "FilterId of the zone bucket's request metrics on the error prefix."
  type        = string
}

variable "delivery_stream_names" {
  description = "Firehose delivery stream name per event type."
  type        = map(string)
}

variable "api_id" {
  description = "Id of the ingest HTTP API."
  type        = string
}

variable "api_stage" {
  description = "Stage of the ingest HTTP API."
  type        = string
  default     = "$default"
}

variable "function_names" {
  description = "Lambda function name by role (api, transform, loader) for error and throttle alarms."
  type        = map(string)
}

variable "workers_cluster_name" {
  description = "ECS cluster of the workers (consumer groups, zone loader)."
  type        = string
}

variable "worker_service_names" {
  description = "ECS service name per worker (consume-<group>, load); each alarms when no task runs."
  type        = map(string)
  default     = {}
}

variable "loader_dlq_name" {
  description = "Name of the loader's SQS dead-letter queue."
  type        = string
}

variable "alarm_emails" {
  description = "E-mail addresses subscribed to the alarm topic (each confirms by mail)."
  type        = list(string)
  default     = []
}

variable "kms_key_arn" {
  description = "Customer managed KMS key of the alarm topic."
  type        = string
}

variable "tags" {
  description = "Tags applied to every resource of the module."
  type        = map(string)
  default     = {}
}
