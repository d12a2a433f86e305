# Shared by every environment (each environment's variables.tf is a link to this file);
# the values come from the environment's terraform.tfvars.

variable "aws_region" {
  type        = string
  description = "AWS region of the environment."
  default     = "us-east-1"
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
