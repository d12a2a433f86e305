variable "name_prefix" {
  type        = string
  description = "Prefix of every resource name, e.g. \"dataplatform-dev\"."
}

variable "release_label" {
  type        = string
  description = "EMR Serverless release; emr-7.x ships Spark 3.5 and Delta 3.x, the versions pyspark_jobs pins (pyspark 3.5.7, delta-spark 3.3.2)."
  default     = "emr-7.9.0"
}

variable "vpc_id" {
  type        = string
  description = "VPC of the jobs (they reach MSK and RDS privately)."
}

variable "subnet_ids" {
  type        = list(string)
  description = "Private subnets of the jobs."
}

variable "lake_bucket_arn" {
  type        = string
  description = "ARN of the lakehouse bucket the jobs read and write."
}

variable "lake_kms_key_arn" {
  type        = string
  description = "KMS key of the lakehouse bucket."
}

variable "artifacts_uri" {
  type        = string
  description = "S3 folder (s3://<bucket>/<prefix>, no trailing slash) where CI uploads pyspark_jobs/*.py and the wheel of the project (--py-files)."
}

variable "artifacts_bucket_arn" {
  type        = string
  description = "ARN of the bucket holding artifacts_uri (read-only for the jobs)."
}

variable "msk_cluster_arn" {
  type        = string
  description = "MSK cluster the landing job reads (kafka-cluster:Connect)."
}

variable "msk_topic_arn_prefix" {
  type        = string
  description = "Prefix of the cluster's topic ARNs."
}

variable "msk_group_arn_prefix" {
  type        = string
  description = "Prefix of the cluster's consumer-group ARNs (Spark's Kafka source uses spark-kafka-source-* groups)."
}

variable "topics" {
  type        = list(string)
  description = "Topics the landing job reads (finance.transactions.v1, insurance.claims.v1)."
}

variable "postgres_secret_arn" {
  type        = string
  description = "Secrets Manager secret with the Postgres password (the curation job reads reference data)."
}

variable "postgres_secret_kms_key_arn" {
  type        = string
  description = "KMS key encrypting the Postgres secret."
}

variable "max_cpu" {
  type        = string
  description = "Most vCPU the application may use at once, e.g. \"16 vCPU\"."
  default     = "16 vCPU"
}

variable "max_memory" {
  type        = string
  description = "Most memory the application may use at once, e.g. \"64 GB\"."
  default     = "64 GB"
}

variable "idle_timeout_minutes" {
  type        = number
  description = "Minutes of idleness after which the application stops (batch jobs restart it)."
  default     = 15
}

variable "log_retention_days" {
  type        = number
  description = "Days the job logs are kept in CloudWatch."
  default     = 365
}

variable "tags" {
  type        = map(string)
  description = "Tags added to every resource."
  default     = {}
}
