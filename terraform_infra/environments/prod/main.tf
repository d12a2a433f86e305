# prod: three brokers (replication 3, min.insync 2, so acks=all survives one broker down),
# Multi-AZ Postgres, three DocumentDB instances, protected data stores.
#
# The platform module call is shared (platform.tf, a link); these are this environment's values.

locals {
  environment          = "prod"
  msk_broker_count     = 3
  msk_instance_type    = "kafka.m7g.large"
  replication_factor   = 3
  min_insync_replicas  = 2
  rds_instance_class   = "db.r7g.xlarge"
  rds_multi_az         = true
  deletion_protection  = true
  docdb_instance_count = 3
  spark_max_cpu        = "64 vCPU"
  spark_max_memory     = "256 GB"
  lambda_concurrency   = 200
  mwaa_class           = "mw1.medium"
}
