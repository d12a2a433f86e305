variable "name_prefix" {
  type        = string
  description = "Prefix of every resource name, e.g. \"dataplatform-dev\"."
}

variable "vpc_id" {
  type        = string
  description = "VPC of the cluster."
}

variable "subnet_ids" {
  type        = list(string)
  description = "Private subnets of the cluster's subnet group (at least two availability zones)."
}

variable "client_security_group_ids" {
  type        = map(string)
  description = "Security groups allowed to connect on the MongoDB port (the Spark jobs reading documents/<kind>), by component name (static keys: the rules are planned before the groups exist)."
  default     = {}
}

variable "port" {
  type        = number
  description = "MongoDB wire-protocol port (27017, as MongoDB/FerretDB natively)."
  default     = 27017
}

variable "engine_version" {
  type        = string
  description = "DocumentDB engine version (MongoDB 5.0 API)."
  default     = "5.0.0"
}

variable "instance_class" {
  type        = string
  description = "Instance class, e.g. db.t4g.medium (dev) or db.r6g.large (prod)."
  default     = "db.t4g.medium"
}

variable "instance_count" {
  type        = number
  description = "Instances in the cluster (1 primary + replicas; prod: 3)."
  default     = 1
}

variable "master_username" {
  type        = string
  description = "Master user (MONGODB_USER). Its password is generated and kept in Secrets Manager by DocumentDB."
  default     = "dataplatform"
}

variable "backup_retention_days" {
  type        = number
  description = "Days of automated backups."
  default     = 7
}

variable "deletion_protection" {
  type        = bool
  description = "Refuse to delete the cluster (true outside dev)."
  default     = true
}

variable "log_retention_days" {
  type        = number
  description = "Days the audit and profiler logs are kept."
  default     = 365
}

variable "tags" {
  type        = map(string)
  description = "Tags added to every resource."
  default     = {}
}
