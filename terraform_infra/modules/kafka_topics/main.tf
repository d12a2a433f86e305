# The platform's topics on MSK, through the Kafka protocol (the caller configures the `kafka`
# provider against the cluster's SASL/IAM listener). Same names and partitions as natively.

resource "kafka_topic" "this" {
  for_each           = var.topics
  name               = each.key
  partitions         = each.value.partitions
  replication_factor = each.value.replication_factor
  config             = each.value.config
}
