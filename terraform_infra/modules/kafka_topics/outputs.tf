output "topic_names" {
  description = "Names of the topics created (the ingestor produces to them, the landing job reads them)."
  value       = sort([for t in kafka_topic.this : t.name])
}
