output "environment_name" {
  description = "Name of the MWAA environment (`aws mwaa create-cli-token --name`)."
  value       = aws_mwaa_environment.this.name
}

output "webserver_url" {
  description = "Airflow UI host name, reachable from inside the VPC (natively http://127.0.0.1:8081)."
  value       = aws_mwaa_environment.this.webserver_url
}

output "dags_bucket_name" {
  description = "Bucket CI syncs airflow_dags/ into (under dags/)."
  value       = aws_s3_bucket.dags.bucket
}

output "role_arn" {
  description = "Execution role of the environment."
  value       = aws_iam_role.mwaa.arn
}

output "security_group_id" {
  description = "Security group of the environment (allowed in by RDS)."
  value       = aws_security_group.mwaa.id
}
