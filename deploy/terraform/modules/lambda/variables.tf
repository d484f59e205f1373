variable "function_name" {
  description = "Name of the function (also the name of its role and log group)."
  type        = string
}

variable "description" {
  description = "Description of the function."
  type        = string
}

variable "handler" {
  description = "Python entry point, module.function (for example ingest_api.lambda_function.lambda_handler)."
  type        = string
}

variable "runtime" {
  description = "Lambda runtime (Amazon Linux 2023); must match the Python the artifact was built for (`sluice package --python-version`)."
  type        = string
  default     = "python3.12"

  validation {
    condition     = contains(["python3.12", "python3.13"], var.runtime)
    error_message = "The artifacts are built for python3.12 or python3.13 (Amazon Linux 2023, manylinux_2_28 wheels)."
  }
}

variable "architecture" {
  description = "Instruction set of the function; must match the artifact (`sluice package --arch`)."
  type        = string
  default     = "x86_64"

  validation {
    condition     = contains(["x86_64", "arm64"], var.architecture)
    error_message = "architecture is x86_64 or arm64."
  }
}

variable "package_path" {
  description = "Path of the zip built by `sluice package` (dist/<function>.zip)."
  type        = string
}

variable "memory_mb" {
  description = "Memory of the function, in MB."
  type        = number
  default     = 512
}

variable "timeout_seconds" {
  description = "Timeout of one invocation, in seconds."
  type        = number
  default     = 30
}

variable "reserved_concurrency" {
  description = "Reserved concurrent executions (an upper bound that protects downstream services); null: unreserved. Reserving takes from the account's pool, which must keep 100 unreserved."
  type        = number
  default     = null
}

variable "environment" {
  description = "Environment variables (SLUICE_* settings). Never secret values: pass secret ARNs."
  type        = map(string)
  default     = {}
}

variable "kms_key_arn" {
  description = "Customer managed KMS key for the environment variables and the log group."
  type        = string
}

variable "subnet_ids" {
  description = "Private subnets the function runs in."
  type        = list(string)
}

variable "security_group_ids" {
  description = "Security groups of the function's network interfaces."
  type        = list(string)
}

variable "policy_json" {
  description = "IAM policy document (JSON) of what the function does, scoped to its own resources (null: nothing beyond logs, network interfaces, traces)."
  type        = string
  default     = null
}

variable "dead_letter_target_arn" {
  description = "SQS queue for events of failed asynchronous invocations (null for synchronous callers)."
  type        = string
  default     = null
}

variable "log_retention_days" {
  description = "Retention of the function's log group, in days."
  type        = number
  default     = 365
}

variable "tags" {
  description = "Tags applied to every resource of the module."
  type        = map(string)
  default     = {}
}
