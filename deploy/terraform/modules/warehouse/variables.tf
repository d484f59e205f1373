variable "name" {
  description = "Name prefix of the environment."
  type        = string
}

variable "database_name" {
  description = "Database of the warehouse tables."
  type        = string
  default     = "sluice"
}

variable "admin_username" {
  description = "Admin user of the namespace (its password is generated and kept in Secrets Manager)."
  type        = string
  default     = "sluice_admin"
}

variable "base_capacity_rpu" {
  description = "Base capacity of the workgroup, in Redshift processing units (8 to 512, steps of 8)."
  type        = number
  default     = 8
}

variable "vpc_id" {
  description = "VPC of the workgroup."
  type        = string
}

variable "subnet_ids" {
  description = "Private subnets of the workgroup and the loader (three availability zones)."
  type        = list(string)
}

variable "client_security_group_ids" {
  description = "Security groups allowed to connect to the workgroup; the loader function runs in them."
  type        = list(string)
}

variable "bucket_name" {
  description = "Name of the S3 zone bucket (its object notifications invoke the loader)."
  type        = string
}

variable "bucket_arn" {
  description = "ARN of the S3 zone bucket."
  type        = string
}

variable "clean_prefix" {
  description = "Zone prefix of the cleaned records the loader and COPY read."
  type        = string
  default     = "clean/"
}

variable "manifest_prefix" {
  description = "Zone prefix of the loader's own COPY manifests."
  type        = string
  default     = "manifests/"
}

variable "loader_trigger_suffix" {
  description = "Objects under the clean prefix whose key ends with this suffix are notified to the loader queue (Firehose's GZIP objects end with .gz)."
  type        = string
  default     = ".gz"
}

variable "loader_package_path" {
  description = "Zip of the loader function built by `sluice package --function loader`."
  type        = string
}

variable "loader_environment" {
  description = "SLUICE_* settings of the loader (no secret values); the warehouse connection settings are added by the module."
  type        = map(string)
  default     = {}
}

variable "loader_db_user" {
  description = "Database user of the loader (created once by the admin, see docs/deploy.md)."
  type        = string
  default     = "sluice_loader"
}

variable "loader_db_password" {
  description = "Password of the loader's database user; null leaves SLUICE_WAREHOUSE_DSN unset until it is known."
  type        = string
  default     = null
  sensitive   = true
}

variable "loader_secret_arns" {
  description = "Secrets the loader may read."
  type        = list(string)
  default     = []
}

variable "loader_memory_mb" {
  description = "Memory of the loader function, in MB."
  type        = number
  default     = 512
}

variable "loader_timeout_seconds" {
  description = "Timeout of the loader function, in seconds."
  type        = number
  default     = 300
}

variable "loader_reserved_concurrency" {
  description = "Reserved concurrent executions of the loader (bounds concurrent MERGEs)."
  type        = number
  default     = 4
}

variable "kms_key_arn" {
  description = "Customer managed KMS key (namespace, admin secret, DLQ, logs, S3 objects)."
  type        = string
}

variable "log_retention_days" {
  description = "Retention of the loader's log group, in days."
  type        = number
  default     = 365
}

variable "tags" {
  description = "Tags applied to every resource of the module."
  type        = map(string)
  default     = {}
}
