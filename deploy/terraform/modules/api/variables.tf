variable "name" {
  description = "Name prefix of the environment."
  type        = string
}

variable "package_path" {
  description = "Zip of the ingest function built by `sluice package --function api`."
  type        = string
}

variable "environment" {
  description = "SLUICE_* settings of the ingest function (no secret values)."
  type        = map(string)
}

variable "auth_mode" {
  description = "How API Gateway authenticates callers: jwt (JWT authorizer) or iam (SigV4)."
  type        = string
  default     = "jwt"

  validation {
    condition     = contains(["jwt", "iam"], var.auth_mode)
    error_message = "auth_mode must be jwt or iam."
  }
}

variable "jwt_issuer" {
  description = "Issuer URL of the JWTs (auth_mode = jwt), for example the Cognito user pool URL."
  type        = string
  default     = null
}

variable "jwt_audience" {
  description = "Accepted audiences (client ids) of the JWTs (auth_mode = jwt)."
  type        = list(string)
  default     = []
}

variable "jwt_scopes" {
  description = "OAuth scopes a JWT must carry for the routes (empty = none required)."
  type        = list(string)
  default     = []
}

variable "routes" {
  description = "Route keys sent to the ingest function; all of them require authorization."
  type        = list(string)
  default     = ["ANY /{proxy+}"]
}

variable "throttling_rate_limit" {
  description = "Steady-state requests per second allowed by the stage."
  type        = number
  default     = 500
}

variable "throttling_burst_limit" {
  description = "Burst of requests allowed by the stage."
  type        = number
  default     = 1000
}

variable "integration_timeout_ms" {
  description = "How long API Gateway waits for the function, in milliseconds (at most 30000)."
  type        = number
  default     = 29000
}

variable "memory_mb" {
  description = "Memory of the ingest function, in MB."
  type        = number
  default     = 1024
}

variable "timeout_seconds" {
  description = "Timeout of the ingest function, in seconds."
  type        = number
  default     = 29
}

variable "reserved_concurrency" {
  description = "Reserved concurrent executions of the ingest function; null: unreserved."
  type        = number
  default     = null
}

variable "kinesis_stream_arns" {
  description = "Kinesis streams the function publishes to (empty on Kafka)."
  type        = list(string)
  default     = []
}

variable "kafka_cluster_arn" {
  description = "MSK cluster the function publishes to (null on Kinesis)."
  type        = string
  default     = null
}

variable "kafka_topic_arns" {
  description = "IAM ARNs of the topics the function writes (empty on Kinesis)."
  type        = list(string)
  default     = []
}

variable "api_keys_ssm_path" {
  description = "Parameter Store path of the API key records (one SecureString per key, e.g. /sluice-prod/api-keys/); the function may read only this path."
  type        = string

  validation {
    condition     = can(regex("^/[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*/$", var.api_keys_ssm_path))
    error_message = "api_keys_ssm_path is an absolute Parameter Store path ending with '/'."
  }
}

variable "secret_arns" {
  description = "Secrets Manager secrets the function may read (API keys, PII HMAC key)."
  type        = list(string)
  default     = []
}

variable "kms_key_arn" {
  description = "Customer managed KMS key (environment variables, logs, stream encryption)."
  type        = string
}

variable "subnet_ids" {
  description = "Private subnets of the function."
  type        = list(string)
}

variable "security_group_ids" {
  description = "Security groups of the function."
  type        = list(string)
}

variable "log_retention_days" {
  description = "Retention of the access and function log groups, in days."
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
