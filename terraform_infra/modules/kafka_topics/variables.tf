variable "topics" {
  type = map(object({
    partitions         = number
    replication_factor = number
    config             = map(string)
  }))
  description = "Topics by name, <domain>.<entity>.v<N> as natively (src/dataplatform/contracts), with their partitions, replication factor and topic configs."
  default = {
    "finance.transactions.v1" = {
      partitions         = 3
      replication_factor = 3
      config = {
        "min.insync.replicas" = "2"
        "cleanup.policy"      = "delete"
        "retention.ms"        = "604800000"
      }
    }
    "insurance.claims.v1" = {
      partitions         = 3
      replication_factor = 3
      config = {
        "min.insync.replicas" = "2"
        "cleanup.policy"      = "delete"
        "retention.ms"        = "604800000"
      }
    }
  }
}
