variable "description" {
  type        = string
  description = "What the key encrypts, shown in the KMS console (e.g. \"dataplatform-prod lakehouse bucket\")."
}

variable "tags" {
  type        = map(string)
  description = "Tags of the key."
  default     = {}
}
