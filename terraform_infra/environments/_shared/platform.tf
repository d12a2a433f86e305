# Shared by every environment (each environment's platform.tf is a link to this file): the
# whole platform, sized by the environment's locals (its main.tf) and placed in its account
# by its terraform.tfvars.

module "platform" {
  source = "../../modules/platform"

  environment          = local.environment
  msk_broker_count     = local.msk_broker_count
  msk_instance_type    = local.msk_instance_type
  replication_factor   = local.replication_factor
  min_insync_replicas  = local.min_insync_replicas
  rds_instance_class   = local.rds_instance_class
  rds_multi_az         = local.rds_multi_az
  deletion_protection  = local.deletion_protection
  docdb_instance_count = local.docdb_instance_count
  spark_max_cpu        = local.spark_max_cpu
  spark_max_memory     = local.spark_max_memory
  lambda_concurrency   = local.lambda_concurrency
  mwaa_class           = local.mwaa_class
  vpc_id               = var.vpc_id
  private_subnet_ids   = var.private_subnet_ids
  mwaa_subnet_ids      = var.mwaa_subnet_ids
  lake_bucket_name     = var.lake_bucket_name
  ingestor_image_uri   = var.ingestor_image_uri
  artifacts_version    = var.artifacts_version
}
