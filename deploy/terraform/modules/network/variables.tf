variable "name" {
  description = "Name prefix of the environment, used in resource names and Name tags."
  type        = string
}

variable "cidr_block" {
  description = "CIDR block of the VPC."
  type        = string
  default     = "10.40.0.0/16"
}

variable "availability_zones" {
  description = "Availability zones of the private subnets (Redshift Serverless needs three)."
  type        = list(string)

  validation {
    condition     = length(var.availability_zones) >= 3
    error_message = "At least three availability zones are needed (Redshift Serverless, MSK)."
  }
}

variable "private_subnet_cidrs" {
  description = "One CIDR block per availability zone, in the same order."
  type        = list(string)
}

variable "interface_endpoint_services" {
  description = "AWS services reached through interface VPC endpoints (service name suffixes)."
  type        = list(string)
  default = [
    "kinesis-streams",
    "kinesis-firehose",
    "sts",
    "logs",
    "monitoring",
    "secretsmanager",
    "ssm",
    "kms",
    "redshift-serverless",
    "ecr.api",
    "ecr.dkr",
  ]
}

variable "kms_key_arn" {
  description = "Customer managed KMS key that encrypts the flow log group."
  type        = string
}

variable "log_retention_days" {
  description = "Retention of the VPC flow log group, in days."
  type        = number
  default     = 365
}

variable "tags" {
  description = "Tags applied to every resource of the module."
  type        = map(string)
  default     = {}
}
