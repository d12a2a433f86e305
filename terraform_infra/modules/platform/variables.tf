variable "environment" {
  type        = string
  description = "Name of the environment (dev, staging or prod): part of every resource name and tag."
  validation {
    condition     = contains(["dev", "staging", "prod"], var.environment)
    error_message = "environment must be dev, staging or prod."
  }
}

variable "vpc_id" {
  type        = string
  description = "Existing VPC the platform runs in (private subnets with a NAT or VPC endpoints)."
}

variable "private_subnet_ids" {
  type        = list(string)
  description = "Private subnets in at least two availability zones (MSK brokers, RDS, DocumentDB, Lambda, EMR Serverless); the broker count must be a multiple of their number (staging and prod: three)."
}

variable "mwaa_subnet_ids" {
  type        = list(string)
  description = "Exactly two private subnets in different availability zones for MWAA."
}

variable "lake_bucket_name" {
  type        = string
  description = "Globally unique name of the lakehouse bucket (S3_BUCKET; \"lakehouse\" natively)."
}

variable "ingestor_image_uri" {
  type        = string
  description = "ECR image of the ingestor for Lambda, pinned by digest (built by .github/workflows/release.yml)."
}

variable "artifacts_version" {
  type        = string
  description = "Release whose Spark artifacts (pyspark_jobs/*.py, dataplatform.whl) the jobs run, under s3://<lake bucket>/_artifacts/<version>."
}

variable "msk_broker_count" {
  type        = number
  description = "MSK brokers; a multiple of the number of private subnets."
}

variable "msk_instance_type" {
  type        = string
  description = "MSK broker instance type (e.g. kafka.t3.small, kafka.m7g.large)."
}

variable "replication_factor" {
  type        = number
  description = "Replication factor of the platform's topics (and the cluster default)."
}

variable "min_insync_replicas" {
  type        = number
  description = "min.insync.replicas of the topics: below replication_factor so acks=all survives a broker down."
}

variable "rds_instance_class" {
  type        = string
  description = "RDS PostgreSQL instance class (e.g. db.t4g.medium)."
}

variable "rds_multi_az" {
  type        = bool
  description = "Whether RDS PostgreSQL runs with a standby in a second availability zone."
}

variable "deletion_protection" {
  type        = bool
  description = "Protect the data stores (RDS, DocumentDB) from deletion and keep the lake bucket when its objects exist."
}

variable "docdb_instance_count" {
  type        = number
  description = "DocumentDB instances (1 writer, the rest readers)."
}

variable "spark_max_cpu" {
  type        = string
  description = "Maximum vCPU of the EMR Serverless application (e.g. \"8 vCPU\")."
}

variable "spark_max_memory" {
  type        = string
  description = "Maximum memory of the EMR Serverless application (e.g. \"32 GB\")."
}

variable "lambda_concurrency" {
  type        = number
  description = "Reserved concurrency of the ingestor's Lambda function."
}

variable "mwaa_class" {
  type        = string
  description = "MWAA environment class (mw1.small, mw1.medium...)."
}
