variable "name_prefix" {
  type        = string
  description = "Prefix of every resource name, e.g. \"dataplatform-dev\"."
}

variable "airflow_version" {
  type        = string
  description = "Airflow version of the MWAA environment; the DAGs use the Airflow 3 `airflow.sdk` API (natively Airflow 3.x)."
  default     = "3.0.6"
}

variable "environment_class" {
  type        = string
  description = "MWAA environment class (mw1.micro, mw1.small, mw1.medium, ...)."
  default     = "mw1.small"
}

variable "max_workers" {
  type        = number
  description = "Most Celery workers."
  default     = 2
}

variable "vpc_id" {
  type        = string
  description = "VPC of the environment."
}

variable "subnet_ids" {
  type        = list(string)
  description = "Exactly two private subnets in different availability zones (an MWAA requirement)."
}

variable "lake_bucket_arn" {
  type        = string
  description = "ARN of the lakehouse bucket (the platform_backup DAG writes _backups/)."
}

variable "lake_kms_key_arn" {
  type        = string
  description = "KMS key of the lakehouse bucket."
}

variable "emr_application_arn" {
  type        = string
  description = "EMR Serverless application the DAGs' Spark tasks start job runs on."
}

variable "emr_job_role_arn" {
  type        = string
  description = "Runtime role passed to the job runs (iam:PassRole is granted on it alone)."
}

variable "airflow_configuration_options" {
  type        = map(string)
  description = "Extra airflow.cfg options (section.key = value)."
  default     = {}
}

variable "tags" {
  type        = map(string)
  description = "Tags added to every resource."
  default     = {}
}
