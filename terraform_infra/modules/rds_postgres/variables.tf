variable "name_prefix" {
  type        = string
  description = "Prefix of every resource name, e.g. \"dataplatform-dev\"."
}

variable "vpc_id" {
  type        = string
  description = "VPC the database runs in."
}

variable "subnet_ids" {
  type        = list(string)
  description = "Private subnets of the DB subnet group (at least two availability zones)."
}

variable "client_security_group_ids" {
  type        = map(string)
  description = "Security groups allowed to connect on the Postgres port (ingestor, Spark jobs, Airflow), by component name (static keys: the rules are planned before the groups exist)."
  default     = {}
}

variable "port" {
  type        = number
  description = "Postgres port (POSTGRES_PORT; 5432 as natively)."
  default     = 5432
}

variable "engine_version" {
  type        = string
  description = "PostgreSQL major version (the native server is PostgreSQL 15)."
  default     = "15"
}

variable "instance_class" {
  type        = string
  description = "DB instance class, e.g. db.t4g.medium (dev) or db.r7g.large (prod)."
  default     = "db.t4g.medium"
}

variable "allocated_storage_gib" {
  type        = number
  description = "Initial storage, GiB (storage autoscaling goes up to max_allocated_storage_gib)."
  default     = 50
}

variable "max_allocated_storage_gib" {
  type        = number
  description = "Upper bound of storage autoscaling, GiB."
  default     = 500
}

variable "database_name" {
  type        = string
  description = "Initial database (POSTGRES_DB: \"dataplatform\" as natively); Airflow's \"airflow\" database is created by its migration."
  default     = "dataplatform"
}

variable "master_username" {
  type        = string
  description = "Master user (POSTGRES_USER). Its password is generated and kept in Secrets Manager by RDS."
  default     = "dataplatform"
}

variable "multi_az" {
  type        = bool
  description = "Run a synchronous standby in a second availability zone (prod: true)."
  default     = false
}

variable "backup_retention_days" {
  type        = number
  description = "Days of automated backups and point-in-time recovery."
  default     = 7
}

variable "deletion_protection" {
  type        = bool
  description = "Refuse to delete the instance (true outside dev)."
  default     = true
}

variable "monitoring_interval_s" {
  type        = number
  description = "Enhanced Monitoring interval, seconds (0 disables it)."
  default     = 60
}

variable "log_retention_days" {
  type        = number
  description = "Days the exported Postgres logs are kept in CloudWatch."
  default     = 365
}

variable "tags" {
  type        = map(string)
  description = "Tags added to every resource."
  default     = {}
}
