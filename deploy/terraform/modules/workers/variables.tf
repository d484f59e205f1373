variable "name" {
  description = "Name prefix of the environment."
  type        = string
}

variable "image_tag" {
  description = "Tag of the application image in the module's ECR repository (tags are immutable)."
  type        = string
}

variable "images_kept" {
  description = "How many images the repository keeps (older ones expire)."
  type        = number
  default     = 30
}

variable "consumer_groups" {
  description = "Consumer groups to run, one ECS service each (`sluice consume --group <group>`)."
  type        = list(string)
  default     = ["sluice-warehouse"]
}

variable "consumer_tasks_per_group" {
  description = "Tasks per consumer group (at most the partition / shard count is useful)."
  type        = number
  default     = 2
}

variable "consumer_role_arn" {
  description = "Task role of the consumer processes (the consumers module's role)."
  type        = string
}

variable "loader_enabled" {
  description = "Run the zone loader (`sluice load --follow`: the sweep of the clean prefix) as a service."
  type        = bool
  default     = true
}

variable "environment" {
  description = "SLUICE_* settings of every task (no secret values)."
  type        = map(string)
}

variable "secret_arns" {
  description = "Environment variable name -> Secrets Manager secret ARN, injected by ECS (for example SLUICE_WAREHOUSE_DSN)."
  type        = map(string)
  default     = {}
}

variable "bucket_arn" {
  description = "ARN of the S3 zone bucket (the loader reads and writes it)."
  type        = string
}

variable "clean_prefix" {
  description = "Zone prefix of the cleaned records."
  type        = string
  default     = "clean/"
}

variable "manifest_prefix" {
  description = "Zone prefix of the manifests."
  type        = string
  default     = "manifests/"
}

variable "task_cpu" {
  description = "CPU units of one task (1024 = one vCPU)."
  type        = number
  default     = 512
}

variable "task_memory_mb" {
  description = "Memory of one task, in MiB."
  type        = number
  default     = 1024
}

variable "subnet_ids" {
  description = "Private subnets of the tasks."
  type        = list(string)
}

variable "security_group_ids" {
  description = "Security groups of the tasks."
  type        = list(string)
}

variable "kms_key_arn" {
  description = "Customer managed KMS key (repository, log group, secrets)."
  type        = string
}

variable "log_retention_days" {
  description = "Retention of the workers' log group, in days."
  type        = number
  default     = 365
}

variable "tags" {
  description = "Tags applied to every resource of the module."
  type        = map(string)
  default     = {}
}
