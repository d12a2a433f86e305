output "bucket_name" {
  description = "Name of the lakehouse bucket (set it as S3_BUCKET)."
  value       = aws_s3_bucket.lake.bucket
}

output "bucket_arn" {
  description = "ARN of the lakehouse bucket, for the components' IAM policies."
  value       = aws_s3_bucket.lake.arn
}

output "kms_key_arn" {
  description = "ARN of the KMS key encrypting the bucket; readers and writers need kms:Decrypt/GenerateDataKey on it."
  value       = module.kms.arn
}

output "table_uris" {
  description = "Delta table URIs by relative path <layer>/<domain>/<entity>, the same keys as natively."
  value       = local.table_paths
}

output "checkpoint_root" {
  description = "Root of the streaming checkpoints (SPARK_CHECKPOINT_ROOT; s3a:// for Spark)."
  value       = "s3a://${aws_s3_bucket.lake.bucket}/_checkpoints"
}

output "backups_uri" {
  description = "Where the backups go (the platform_backup DAG and `dataplatform backup`)."
  value       = "s3://${aws_s3_bucket.lake.bucket}/_backups"
}
