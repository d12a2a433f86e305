output "arn" {
  description = "ARN of the key (encryption settings and IAM policies take it)."
  value       = aws_kms_key.this.arn
}

output "key_id" {
  description = "Id of the key (aliases take it)."
  value       = aws_kms_key.this.key_id
}
