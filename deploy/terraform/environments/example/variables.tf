variable "environment" {
  description = "Name of the environment (dev, staging, prod); resources are named sluice-<environment>-*."
  type        = string
  default     = "example"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,20}$", var.environment))
    error_message = "environment must be 2-21 lower-case letters, digits or '-'."
  }
}

variable "region" {
  description = "AWS region of the environment (SLUICE_AWS_REGION)."
  type        = string
  default     = "eu-west-1"
}

variable "availability_zones" {
  description = "Three availability zones of the region."
  type        = list(string)
  default     = ["eu-west-1a", "eu-west-1b", "eu-west-1c"]
}

variable "vpc_cidr_block" {
  description = "CIDR block of the VPC."
  type        = string
  default     = "10.40.0.0/16"
}

variable "private_subnet_cidrs" {
  description = "CIDR block of each private subnet, in the order of availability_zones."
  type        = list(string)
  default     = ["10.40.0.0/20", "10.40.16.0/20", "10.40.32.0/20"]
}

variable "stream_backend" {
  description = "kafka (Amazon MSK) or kinesis (Kinesis Data Streams); becomes SLUICE_STREAM_BACKEND."
  type        = string
  default     = "kinesis"
}

variable "stream_retention_hours" {
  description = "How long the streams keep records, in hours: the window `sluice replay` can reach."
  type        = number
  default     = 168
}

variable "kinesis_stream_mode" {
  description = "Kinesis capacity mode (ON_DEMAND or PROVISIONED)."
  type        = string
  default     = "ON_DEMAND"
}

variable "kinesis_shard_count" {
  description = "Shards per stream in PROVISIONED mode."
  type        = number
  default     = 2
}

variable "consumer_groups" {
  description = "Consumer groups run in this environment (each gets lease tables on Kinesis)."
  type        = list(string)
  default     = ["sluice-warehouse"]
}

variable "consumer_tasks_per_group" {
  description = "ECS tasks per consumer group (at most the partition / shard count is useful)."
  type        = number
  default     = 2
}

variable "image_tag" {
  description = "Tag of the application image pushed to the workers' ECR repository (see docs/deploy.md)."
  type        = string
  default     = "0.1.0"
}

variable "kafka_broker_count" {
  description = "MSK brokers (a multiple of the number of availability zones)."
  type        = number
  default     = 3
}

variable "kafka_instance_type" {
  description = "MSK broker instance type."
  type        = string
  default     = "kafka.m7g.large"
}

variable "kafka_partitions" {
  description = "Default partitions of a new topic."
  type        = number
  default     = 12
}

variable "bucket_name" {
  description = "Name of the S3 zone bucket; null derives sluice-<environment>-zone-<account id>."
  type        = string
  default     = null
}

variable "zone_lifecycle_days" {
  description = "Lifecycle of each zone prefix (raw, clean, errors, manifests): days to Standard-IA, to Glacier, to expiration."
  type = map(object({
    infrequent_access = optional(number)
    glacier           = optional(number)
    expiration        = number
  }))
  default = {
    raw       = { infrequent_access = 30, glacier = 90, expiration = 400 }
    clean     = { infrequent_access = 30, expiration = 400 }
    errors    = { infrequent_access = 30, expiration = 180 }
    manifests = { expiration = 400 }
  }
}

variable "raw_backup_enabled" {
  description = "Let Firehose also keep the untransformed records under raw/."
  type        = bool
  default     = true
}

variable "firehose_buffering_size_mb" {
  description = "Firehose S3 buffering hint, MiB (1 to 128)."
  type        = number
  default     = 64
}

variable "firehose_buffering_interval_seconds" {
  description = "Firehose S3 buffering hint, seconds (0 to 900)."
  type        = number
  default     = 300
}

variable "api_auth_mode" {
  description = "jwt (JWT authorizer; set jwt_issuer and jwt_audience) or iam (SigV4 callers)."
  type        = string
  default     = "jwt"
}

variable "jwt_issuer" {
  description = "Issuer URL of the callers' JWTs (api_auth_mode = jwt)."
  type        = string
  default     = null
}

variable "jwt_audience" {
  description = "Audiences (client ids) accepted in the JWTs (api_auth_mode = jwt)."
  type        = list(string)
  default     = []
}

variable "api_throttling_rate_limit" {
  description = "Requests per second the API stage allows."
  type        = number
  default     = 500
}

variable "api_throttling_burst_limit" {
  description = "Request burst the API stage allows."
  type        = number
  default     = 1000
}

variable "pii_hmac_key" {
  description = "Key of the keyed HMAC of national ids (SLUICE_PII_HMAC_KEY); pass with TF_VAR_pii_hmac_key from the vault."
  type        = string
  default     = null
  sensitive   = true
}

variable "api_keys_ttl_seconds" {
  description = "How long an ingest container keeps the API keys it read from Parameter Store (SLUICE_API_KEYS_TTL_S): the longest a created or revoked key waits to take effect."
  type        = number
  default     = 60
}

variable "lambda_runtime" {
  description = "Runtime of the Lambda functions; build the artifacts for the same Python (`sluice package --python-version`)."
  type        = string
  default     = "python3.12"
}

variable "lambda_architecture" {
  description = "Architecture of the Lambda functions (x86_64 or arm64); build the artifacts for the same one (`sluice package --arch`)."
  type        = string
  default     = "x86_64"
}

variable "lambda_reserved_concurrency" {
  description = "Reserved concurrent executions per function (api, transform, loader); unset: unreserved. The account keeps at least 100 unreserved, so the sum must stay below its quota minus 100."
  type = object({
    api       = optional(number)
    transform = optional(number)
    loader    = optional(number)
  })
  default = {}
}

variable "loader_db_password" {
  description = "Password of the loader's database user (see docs/deploy.md); null until the user exists."
  type        = string
  default     = null
  sensitive   = true
}

variable "warehouse_base_capacity_rpu" {
  description = "Base capacity of the Redshift Serverless workgroup, in RPUs."
  type        = number
  default     = 8
}

variable "custom_metrics" {
  description = "Namespace and names of the metrics the Sluice components emit; the alarms read these."
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

variable "alarm_thresholds" {
  description = "Alarm thresholds (see the monitoring module); unset fields keep its defaults."
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

variable "alarm_emails" {
  description = "E-mail addresses subscribed to the alarm topic."
  type        = list(string)
  default     = []
}

variable "artifacts_dir" {
  description = "Directory holding the zips of `sluice package` (sluice-api.zip, sluice-transform.zip, sluice-loader.zip)."
  type        = string
  default     = "../../../../dist"
}

variable "schema_registry" {
  description = "Source of the schema ids on the wire: catalogue (the fixed ids) or glue (a Glue Schema Registry this environment creates); becomes SLUICE_SCHEMA_REGISTRY."
  type        = string
  default     = "catalogue"

  validation {
    condition     = contains(["catalogue", "glue"], var.schema_registry)
    error_message = "schema_registry must be catalogue or glue."
  }
}

variable "schema_registrar_role_arn" {
  description = "The deploy role allowed to register schema versions in the Glue registry (`sluice schemas register`); null: none."
  type        = string
  default     = null
}
