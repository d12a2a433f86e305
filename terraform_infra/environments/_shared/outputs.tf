# Shared by every environment (each environment's outputs.tf is a link to this file).

output "ingest_api_endpoint" {
  description = "Base URL of the ingest API (replaces http://127.0.0.1:8000)."
  value       = module.platform.ingest_api_endpoint
}

output "ingestor_function_name" {
  description = "Lambda function of the ingestor (runbooks/ingestor_overload.md)."
  value       = module.platform.ingestor_function_name
}

output "kafka_bootstrap_servers" {
  description = "KAFKA_BOOTSTRAP_SERVERS of the cloud platform (SASL/IAM, port 9098)."
  value       = module.platform.kafka_bootstrap_servers
}

output "topics" {
  description = "Topics on MSK (the same names as natively)."
  value       = module.platform.topics
}

output "lake_table_uris" {
  description = "Delta table URIs by <layer>/<domain>/<entity>."
  value       = module.platform.lake_table_uris
}

output "postgres_address" {
  description = "POSTGRES_HOST of the cloud platform."
  value       = module.platform.postgres_address
}

output "postgres_secret_arn" {
  description = "Secrets Manager secret with the Postgres master password."
  value       = module.platform.postgres_secret_arn
}

output "spark_application_id" {
  description = "EMR Serverless application id for job runs."
  value       = module.platform.spark_application_id
}

output "spark_job_role_arn" {
  description = "Runtime role of the Spark job runs."
  value       = module.platform.spark_job_role_arn
}

output "spark_entry_points" {
  description = "S3 entry point of each Spark job."
  value       = module.platform.spark_entry_points
}

output "spark_submit_parameters" {
  description = "sparkSubmitParameters of every job run."
  value       = module.platform.spark_submit_parameters
}

output "airflow_environment_name" {
  description = "MWAA environment name."
  value       = module.platform.airflow_environment_name
}

output "airflow_dags_bucket" {
  description = "Bucket CI syncs airflow_dags/ into."
  value       = module.platform.airflow_dags_bucket
}

output "documentdb_endpoint" {
  description = "DocumentDB writer endpoint."
  value       = module.platform.documentdb_endpoint
}
