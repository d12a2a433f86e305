output "application_id" {
  description = "EMR Serverless application id (`aws emr-serverless start-job-run --application-id`)."
  value       = aws_emrserverless_application.spark.id
}

output "application_arn" {
  description = "ARN of the EMR Serverless application (MWAA may start job runs on it)."
  value       = aws_emrserverless_application.spark.arn
}

output "job_role_arn" {
  description = "Runtime role of the job runs (--execution-role-arn)."
  value       = aws_iam_role.job.arn
}

output "entry_points" {
  description = "S3 entry point of each job (the pyspark_jobs module files) and the native command it replaces."
  value = {
    for name, job in local.jobs : name => {
      entry_point = "${var.artifacts_uri}/pyspark_jobs/${job.script}"
      native      = job.native
    }
  }
}

output "spark_submit_parameters" {
  description = "sparkSubmitParameters of every job run (the project's wheel, Delta's jars and SQL extensions)."
  value       = local.spark_submit_parameters
}

output "log_group_name" {
  description = "CloudWatch log group of the job runs (monitoringConfiguration.cloudWatchLoggingConfiguration)."
  value       = aws_cloudwatch_log_group.jobs.name
}

output "security_group_id" {
  description = "Security group of the jobs (allowed in by MSK and RDS)."
  value       = aws_security_group.spark.id
}
