# staging: prod's shape at a smaller size — three brokers, Multi-AZ Postgres, two DocumentDB
# instances, protected data stores — where releases and DR drills are rehearsed.
#
# The platform module call is shared (platform.tf, a link); these are this environment's values.

locals {
  environment          = "staging"
  msk_broker_count     = 3
  msk_instance_type    = "kafka.m7g.large"
  replication_factor   = 3
  min_insync_replicas  = 2
  rds_instance_class   = "db.r7g.large"
  rds_multi_az         = true
  deletion_protection  = true
  docdb_instance_count = 2
  spark_max_cpu        = "16 vCPU"
  spark_max_memory     = "64 GB"
  lambda_concurrency   = 50
  mwaa_class           = "mw1.small"
}
