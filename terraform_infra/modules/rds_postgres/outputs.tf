output "address" {
  description = "Host name of the instance (POSTGRES_HOST)."
  value       = aws_db_instance.this.address
}

output "port" {
  description = "Port of the instance (POSTGRES_PORT)."
  value       = aws_db_instance.this.port
}

output "database_name" {
  description = "Initial database (POSTGRES_DB)."
  value       = aws_db_instance.this.db_name
}

output "master_username" {
  description = "Master user (POSTGRES_USER)."
  value       = aws_db_instance.this.username
}

output "master_secret_arn" {
  description = "Secrets Manager secret holding the master password (JSON with `password`); read by the ingestor at cold start."
  value       = aws_db_instance.this.master_user_secret[0].secret_arn
}

output "kms_key_arn" {
  description = "KMS key of the storage and of the master secret (readers of the secret need kms:Decrypt)."
  value       = module.kms.arn
}

output "security_group_id" {
  description = "Security group of the instance."
  value       = aws_security_group.rds.id
}

output "instance_arn" {
  description = "ARN of the instance."
  value       = aws_db_instance.this.arn
}
