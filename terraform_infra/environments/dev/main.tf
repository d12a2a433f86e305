# dev: the whole platform on AWS at its smallest — two brokers, single-AZ Postgres, one
# DocumentDB instance, deletable data stores.
#
# The platform module call is shared (platform.tf, a link); these are this environment's values.

locals {
  environment          = "dev"
  msk_broker_count     = 2
  msk_instance_type    = "kafka.t3.small"
  replication_factor   = 2
  min_insync_replicas  = 1
  rds_instance_class   = "db.t4g.medium"
  rds_multi_az         = false
  deletion_protection  = false
  docdb_instance_count = 1
  spark_max_cpu        = "8 vCPU"
  spark_max_memory     = "32 GB"
  lambda_concurrency   = 20
  mwaa_class           = "mw1.small"
}
