variable "name" {
  description = "Name of the Glue registry (SLUICE_SCHEMA_REGISTRY_NAME)."
  type        = string
}

variable "schemas" {
  description = "Schema name (the stream name) -> the text of its first version (.avsc); later versions are registered in order by `sluice schemas register` with the registrar role."
  type        = map(string)
}

variable "compatibility" {
  description = "Glue compatibility mode of every schema; FULL_ALL is the FULL_TRANSITIVE level `sluice schemas check` enforces."
  type        = string
  default     = "FULL_ALL"

  validation {
    condition     = contains(["NONE", "DISABLED", "BACKWARD", "BACKWARD_ALL", "FORWARD", "FORWARD_ALL", "FULL", "FULL_ALL"], var.compatibility)
    error_message = "compatibility must be a Glue compatibility mode."
  }
}

variable "reader_role_arns" {
  description = "Roles that resolve schema version ids and look up the versions they write (the API, the transform, the consumers)."
  type        = list(string)
  default     = []
}

variable "registrar_role_arn" {
  description = "The deploy role that registers new schema versions (`sluice schemas register`); null: none gets registration rights."
  type        = string
  default     = null
}

variable "tags" {
  description = "Tags applied to every resource of the module."
  type        = map(string)
  default     = {}
}
