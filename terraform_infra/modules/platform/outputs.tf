output "ingest_api_endpoint" {
  description = "Base URL of the ingest API (replaces http://127.0.0.1:8000)."
  value       = module.ingestor.api_endpoint
}

output "ingestor_function_name" {
  description = "Lambda function of the ingestor (runbooks/ingestor_overload.md)."
  value       = module.ingestor.function_name
}

output "kafka_bootstrap_servers" {
  description = "KAFKA_BOOTSTRAP_SERVERS of the cloud platform (SASL/IAM, port 9098)."
  value       = module.msk.bootstrap_brokers_sasl_iam
}

output "topics" {
  description = "Topics on MSK (the same names as natively)."
  value       = module.topics.topic_names
}

output "lake_table_uris" {
  description = "Delta table URIs by <layer>/<domain>/<entity>."
  value       = module.lake.table_uris
}

output "postgres_address" {
  description = "POSTGRES_HOST of the cloud platform."
  value       = module.postgres.address
}

output "postgres_secret_arn" {
  description = "Secrets Manager secret with the Postgres master password."
  value       = module.postgres.master_secret_arn
}

output "spark_application_id" {
  description = "EMR Serverless application id for job runs."
  value       = module.spark.application_id
}

output "spark_job_role_arn" {
  description = "Runtime role of the Spark job runs."
  value       = module.spark.job_role_arn
}

output "spark_entry_points" {
  description = "S3 entry point of each Spark job."
  value       = module.spark.entry_points
}

output "spark_submit_parameters" {
  description = "sparkSubmitParameters of every job run."
  value       = module.spark.spark_submit_parameters
}

output "airflow_environment_name" {
  description = "MWAA environment name."
  value       = module.airflow.environment_name
}

output "airflow_dags_bucket" {
  description = "Bucket CI syncs airflow_dags/ into."
  value       = module.airflow.dags_bucket_name
}

output "documentdb_endpoint" {
  description = "DocumentDB writer endpoint."
  value       = module.documents.endpoint
}

output "tags" {
  description = "Tags every resource of the environment carries (the AWS provider's default_tags)."
  value       = local.tags
}
