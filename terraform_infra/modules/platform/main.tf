# The whole platform on AWS, composed once: every environment (environments/dev, staging,
# prod) calls this module and sets only its values (sizes, protection, account details).

locals {
  name_prefix = "dataplatform-${var.environment}"
  tags = {
    project     = "dataplatform"
    environment = var.environment
    managed-by  = "terraform"
  }

  # The same names as natively (src/dataplatform/contracts: <domain>.<entity>.v<N>).
  topic_names = ["finance.transactions.v1", "insurance.claims.v1"]
  topics = {
    for name in local.topic_names : name => {
      partitions         = 3
      replication_factor = var.replication_factor
      config = {
        "min.insync.replicas" = tostring(var.min_insync_replicas)
        "cleanup.policy"      = "delete"
        "retention.ms"        = "604800000"
      }
    }
  }
}

module "lake" {
  source        = "../s3_data_lake"
  name_prefix   = local.name_prefix
  bucket_name   = var.lake_bucket_name
  force_destroy = !var.deletion_protection
  tags          = local.tags
}

module "msk" {
  source                     = "../msk_kafka"
  name_prefix                = local.name_prefix
  vpc_id                     = var.vpc_id
  subnet_ids                 = var.private_subnet_ids
  broker_count               = var.msk_broker_count
  broker_instance_type       = var.msk_instance_type
  default_replication_factor = var.replication_factor
  min_insync_replicas        = var.min_insync_replicas
  client_security_group_ids = {
    ingestor = module.ingestor.security_group_id
    spark    = module.spark.security_group_id
  }
  tags = local.tags
}

module "topics" {
  source = "../kafka_topics"
  topics = local.topics
}

module "postgres" {
  source              = "../rds_postgres"
  name_prefix         = local.name_prefix
  vpc_id              = var.vpc_id
  subnet_ids          = var.private_subnet_ids
  instance_class      = var.rds_instance_class
  multi_az            = var.rds_multi_az
  deletion_protection = var.deletion_protection
  client_security_group_ids = {
    ingestor = module.ingestor.security_group_id
    spark    = module.spark.security_group_id
    airflow  = module.airflow.security_group_id
  }
  tags = local.tags
}

module "ingestor" {
  source                      = "../lambda_api_ingestor"
  name_prefix                 = local.name_prefix
  image_uri                   = var.ingestor_image_uri
  vpc_id                      = var.vpc_id
  subnet_ids                  = var.private_subnet_ids
  kafka_bootstrap_servers     = module.msk.bootstrap_brokers_sasl_iam
  msk_cluster_arn             = module.msk.cluster_arn
  msk_topic_arn_prefix        = module.msk.topic_arn_prefix
  topics                      = module.topics.topic_names
  postgres_host               = module.postgres.address
  postgres_port               = module.postgres.port
  postgres_db                 = module.postgres.database_name
  postgres_user               = module.postgres.master_username
  postgres_secret_arn         = module.postgres.master_secret_arn
  postgres_secret_kms_key_arn = module.postgres.kms_key_arn
  reserved_concurrency        = var.lambda_concurrency
  tags                        = local.tags
}

module "spark" {
  source                      = "../spark_jobs"
  name_prefix                 = local.name_prefix
  vpc_id                      = var.vpc_id
  subnet_ids                  = var.private_subnet_ids
  lake_bucket_arn             = module.lake.bucket_arn
  lake_kms_key_arn            = module.lake.kms_key_arn
  artifacts_uri               = "s3://${module.lake.bucket_name}/_artifacts/${var.artifacts_version}"
  artifacts_bucket_arn        = module.lake.bucket_arn
  msk_cluster_arn             = module.msk.cluster_arn
  msk_topic_arn_prefix        = module.msk.topic_arn_prefix
  msk_group_arn_prefix        = module.msk.group_arn_prefix
  topics                      = local.topic_names
  postgres_secret_arn         = module.postgres.master_secret_arn
  postgres_secret_kms_key_arn = module.postgres.kms_key_arn
  max_cpu                     = var.spark_max_cpu
  max_memory                  = var.spark_max_memory
  tags                        = local.tags
}

module "airflow" {
  source              = "../mwaa_airflow"
  name_prefix         = local.name_prefix
  vpc_id              = var.vpc_id
  subnet_ids          = var.mwaa_subnet_ids
  environment_class   = var.mwaa_class
  lake_bucket_arn     = module.lake.bucket_arn
  lake_kms_key_arn    = module.lake.kms_key_arn
  emr_application_arn = module.spark.application_arn
  emr_job_role_arn    = module.spark.job_role_arn
  tags                = local.tags
}

module "documents" {
  source                    = "../documentdb"
  name_prefix               = local.name_prefix
  vpc_id                    = var.vpc_id
  subnet_ids                = var.private_subnet_ids
  instance_count            = var.docdb_instance_count
  deletion_protection       = var.deletion_protection
  client_security_group_ids = { spark = module.spark.security_group_id }
  tags                      = local.tags
}
