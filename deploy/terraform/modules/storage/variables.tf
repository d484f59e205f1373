variable "bucket_name" {
  description = "Name of the zone bucket (SLUICE_S3_BUCKET); the access log bucket is <name>-access-logs."
  type        = string
}

variable "kms_key_arn" {
  description = "Customer managed KMS key of the zone bucket's default encryption."
  type        = string
}

variable "raw_prefix" {
  description = "Prefix of the optional source backup (SLUICE_S3_RAW_PREFIX)."
  type        = string
  default     = "raw/"
}

variable "clean_prefix" {
  description = "Prefix of the cleaned records (SLUICE_S3_CLEAN_PREFIX)."
  type        = string
  default     = "clean/"
}

variable "error_prefix" {
  description = "Prefix of the records that failed processing or delivery (SLUICE_S3_ERROR_PREFIX)."
  type        = string
  default     = "errors/"
}

variable "manifest_prefix" {
  description = "Prefix of the loader's manifests (SLUICE_S3_MANIFEST_PREFIX)."
  type        = string
  default     = "manifests/"
}

variable "lifecycle_days" {
  description = "Per zone (raw, clean, errors, manifests): days until Standard-IA and Glacier (null = never) and until expiration."
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

  validation {
    condition     = alltrue([for zone in ["raw", "clean", "errors", "manifests"] : contains(keys(var.lifecycle_days), zone)])
    error_message = "lifecycle_days needs an entry for raw, clean, errors and manifests."
  }
}

variable "noncurrent_version_days" {
  description = "Days a replaced or deleted object version is kept."
  type        = number
  default     = 30
}

variable "access_log_days" {
  description = "Days the S3 server access logs are kept."
  type        = number
  default     = 365
}

variable "tags" {
  description = "Tags applied to every resource of the module."
  type        = map(string)
  default     = {}
}
