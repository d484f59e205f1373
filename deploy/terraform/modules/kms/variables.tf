variable "name" {
  description = "Name prefix of the environment (the key alias is alias/<name>)."
  type        = string
}

variable "deletion_window_in_days" {
  description = "Days a scheduled key deletion waits before it happens (7 to 30)."
  type        = number
  default     = 30

  validation {
    condition     = var.deletion_window_in_days >= 7 && var.deletion_window_in_days <= 30
    error_message = "deletion_window_in_days must be between 7 and 30."
  }
}

variable "tags" {
  description = "Tags applied to every resource of the module."
  type        = map(string)
  default     = {}
}
