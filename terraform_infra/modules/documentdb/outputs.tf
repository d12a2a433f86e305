output "endpoint" {
  description = "Cluster (writer) endpoint host name."
  value       = aws_docdb_cluster.this.endpoint
}

output "reader_endpoint" {
  description = "Reader endpoint host name (the Spark jobs read documents from it)."
  value       = aws_docdb_cluster.this.reader_endpoint
}

output "port" {
  description = "MongoDB wire-protocol port (27017)."
  value       = aws_docdb_cluster.this.port
}

output "master_secret_arn" {
  description = "Secrets Manager secret holding the master password."
  value       = aws_docdb_cluster.this.master_user_secret[0].secret_arn
}

output "security_group_id" {
  description = "Security group of the cluster."
  value       = aws_security_group.docdb.id
}
