variable "name_prefix" {
  type        = string
  description = "Prefix of every resource name, e.g. \"dataplatform-dev\"."
}

variable "bucket_name" {
  type        = string
  description = "Name of the lakehouse bucket (S3_BUCKET natively: \"lakehouse\"). S3 names are global, so each environment passes its own; the keys inside (<layer>/<domain>/<entity>) are the native ones."
}

variable "entities" {
  type = list(object({
    domain = string
    name   = string
  }))
  description = "Entities of the lake (src/dataplatform/contracts); their tables are <layer>/<domain>/<entity>."
  default = [
    { domain = "finance", name = "transactions" },
    { domain = "insurance", name = "claims" },
  ]
}

variable "gold_products" {
  type        = map(string)
  description = "Gold product per domain, gold/<domain>/<product> (src/dataplatform/lake.py GOLD_PRODUCTS)."
  default = {
    finance   = "daily_account_totals"
    insurance = "claims_daily"
  }
}

variable "noncurrent_ia_days" {
  type        = number
  description = "Days after which superseded object versions move to STANDARD_IA."
  default     = 30
}

variable "noncurrent_glacier_days" {
  type        = number
  description = "Days after which superseded object versions move to GLACIER_IR."
  default     = 90
}

variable "noncurrent_expiration_days" {
  type        = number
  description = "Days after which superseded object versions are deleted (keep longer than the Delta time-travel window)."
  default     = 365
}

variable "backups_ia_days" {
  type        = number
  description = "Days after which objects under _backups/ (Postgres dumps, Kafka topic backups) move to STANDARD_IA."
  default     = 30
}

variable "backups_glacier_days" {
  type        = number
  description = "Days after which objects under _backups/ move to GLACIER."
  default     = 90
}

variable "access_log_retention_days" {
  type        = number
  description = "Days the server access logs of the lake bucket are kept."
  default     = 365
}

variable "force_destroy" {
  type        = bool
  description = "Allow terraform destroy to delete a non-empty bucket (dev only)."
  default     = false
}

variable "tags" {
  type        = map(string)
  description = "Tags added to every resource."
  default     = {}
}
