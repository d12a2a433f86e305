variable "name_prefix" {
  type        = string
  description = "Prefix of every resource name, e.g. \"dataplatform-dev\"."
}

variable "image_uri" {
  type        = string
  description = "ECR image of the ingestor for Lambda (fastapi_app/Dockerfile built with the Lambda handler `fastapi_app.lambda_handler.handler`), pinned by digest."
}

variable "vpc_id" {
  type        = string
  description = "VPC of the function (it reaches MSK and RDS privately)."
}

variable "subnet_ids" {
  type        = list(string)
  description = "Private subnets of the function."
}

variable "environment" {
  type        = string
  description = "DATAPLATFORM_ENV of the function; production refuses placeholder secrets and disabled auth."
  default     = "production"

  validation {
    condition     = contains(["development", "production"], var.environment)
    error_message = "environment must be development or production."
  }
}

variable "sink" {
  type        = string
  description = "INGESTOR_SINK: kafka (MSK, the intermediate/advanced path) or postgres (the RDS outbox, starter path)."
  default     = "kafka"

  validation {
    condition     = contains(["kafka", "postgres"], var.sink)
    error_message = "sink must be kafka or postgres."
  }
}

variable "kafka_bootstrap_servers" {
  type        = string
  description = "KAFKA_BOOTSTRAP_SERVERS: the MSK SASL/IAM bootstrap brokers."
}

variable "msk_cluster_arn" {
  type        = string
  description = "MSK cluster the function connects to (kafka-cluster:Connect)."
}

variable "msk_topic_arn_prefix" {
  type        = string
  description = "Prefix of the cluster's topic ARNs; the function may write only to the listed topics under it."
}

variable "topics" {
  type        = list(string)
  description = "Topics the ingestor produces to (finance.transactions.v1, insurance.claims.v1)."
}

variable "postgres_host" {
  type        = string
  description = "POSTGRES_HOST: the RDS instance address."
}

variable "postgres_port" {
  type        = number
  description = "POSTGRES_PORT (5432)."
  default     = 5432
}

variable "postgres_db" {
  type        = string
  description = "POSTGRES_DB (\"dataplatform\")."
  default     = "dataplatform"
}

variable "postgres_user" {
  type        = string
  description = "POSTGRES_USER."
  default     = "dataplatform"
}

variable "postgres_secret_arn" {
  type        = string
  description = "Secrets Manager secret with the Postgres password; the handler reads it at cold start into POSTGRES_PASSWORD."
}

variable "postgres_secret_kms_key_arn" {
  type        = string
  description = "KMS key encrypting the Postgres secret (kms:Decrypt is granted on it alone)."
}

variable "memory_mb" {
  type        = number
  description = "Memory of the function, MB (CPU scales with it)."
  default     = 1024
}

variable "timeout_s" {
  type        = number
  description = "Function timeout, seconds (API Gateway HTTP APIs stop waiting after 30 s)."
  default     = 29
}

variable "reserved_concurrency" {
  type        = number
  description = "Reserved concurrent executions: the ceiling that protects MSK and RDS (see runbooks/ingestor_overload.md)."
  default     = 50
}

variable "throttle_rate_per_s" {
  type        = number
  description = "Steady-state requests per second of the HTTP API stage (beyond it 429)."
  default     = 500
}

variable "throttle_burst" {
  type        = number
  description = "Burst of the HTTP API stage's token bucket."
  default     = 1000
}

variable "log_retention_days" {
  type        = number
  description = "Days the function and access logs are kept."
  default     = 365
}

variable "tags" {
  type        = map(string)
  description = "Tags added to every resource."
  default     = {}
}
