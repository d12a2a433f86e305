output "cluster_arn" {
  description = "ARN of the MSK cluster (kafka-cluster:Connect is granted on it)."
  value       = aws_msk_cluster.this.arn
}

output "bootstrap_brokers_sasl_iam" {
  description = "Bootstrap servers of the SASL/IAM listener, port 9098 (set it as KAFKA_BOOTSTRAP_SERVERS)."
  value       = aws_msk_cluster.this.bootstrap_brokers_sasl_iam
}

output "security_group_id" {
  description = "Security group of the brokers."
  value       = aws_security_group.msk.id
}

output "topic_arn_prefix" {
  description = "Prefix of the cluster's topic ARNs (append the topic name) for kafka-cluster:*Topic* grants."
  value       = local.topic_arn_prefix
}

output "group_arn_prefix" {
  description = "Prefix of the cluster's consumer-group ARNs (append the group name) for kafka-cluster:*Group grants."
  value       = local.group_arn_prefix
}

output "cluster_uuid" {
  description = "UUID part of the cluster ARN."
  value       = local.cluster_uuid
}
