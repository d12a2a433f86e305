# PostgreSQL on RDS: the ingest schema (outbox, receipts, API keys), reference data and the
# Airflow metadata. The master password is managed by RDS in Secrets Manager (never in state),
# TLS is forced, storage is encrypted, backups and PITR are on.

module "kms" {
  source      = "../kms_key"
  description = "${var.name_prefix} RDS storage, Performance Insights and master secret"
  tags        = var.tags
}

resource "aws_db_subnet_group" "this" {
  name       = "${var.name_prefix}-postgres"
  subnet_ids = var.subnet_ids
  tags       = var.tags
}

resource "aws_security_group" "rds" {
  name        = "${var.name_prefix}-postgres"
  description = "Postgres: the platform's clients only"
  vpc_id      = var.vpc_id
  tags        = var.tags
}

resource "aws_vpc_security_group_ingress_rule" "postgres" {
  for_each                     = var.client_security_group_ids
  security_group_id            = aws_security_group.rds.id
  description                  = "Postgres from a platform component"
  referenced_security_group_id = each.value
  ip_protocol                  = "tcp"
  from_port                    = var.port
  to_port                      = var.port
}

resource "aws_db_parameter_group" "this" {
  name   = "${var.name_prefix}-postgres${var.engine_version}"
  family = "postgres${var.engine_version}"
  parameter {
    name  = "rds.force_ssl"
    value = "1"
  }
  parameter {
    name  = "log_min_duration_statement"
    value = "1000"
  }
  parameter {
    name  = "log_statement"
    value = "ddl"
  }
  tags = var.tags
}

data "aws_iam_policy_document" "monitoring_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["monitoring.rds.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "monitoring" {
  name               = "${var.name_prefix}-rds-monitoring"
  assume_role_policy = data.aws_iam_policy_document.monitoring_assume.json
  tags               = var.tags
}

resource "aws_iam_role_policy_attachment" "monitoring" {
  role       = aws_iam_role.monitoring.name
  policy_arn = "arn:aws:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole"
}

resource "aws_cloudwatch_log_group" "postgres" {
  for_each          = toset(["postgresql", "upgrade"])
  name              = "/aws/rds/instance/${var.name_prefix}-postgres/${each.value}"
  retention_in_days = var.log_retention_days
  kms_key_id        = module.kms.arn
  tags              = var.tags
}

resource "aws_db_instance" "this" {
  identifier                            = "${var.name_prefix}-postgres"
  engine                                = "postgres"
  engine_version                        = var.engine_version
  instance_class                        = var.instance_class
  allocated_storage                     = var.allocated_storage_gib
  max_allocated_storage                 = var.max_allocated_storage_gib
  storage_type                          = "gp3"
  storage_encrypted                     = true
  kms_key_id                            = module.kms.arn
  db_name                               = var.database_name
  username                              = var.master_username
  manage_master_user_password           = true
  master_user_secret_kms_key_id         = module.kms.arn
  port                                  = var.port
  db_subnet_group_name                  = aws_db_subnet_group.this.name
  vpc_security_group_ids                = [aws_security_group.rds.id]
  parameter_group_name                  = aws_db_parameter_group.this.name
  publicly_accessible                   = false
  multi_az                              = var.multi_az
  backup_retention_period               = var.backup_retention_days
  copy_tags_to_snapshot                 = true
  deletion_protection                   = var.deletion_protection
  skip_final_snapshot                   = false
  final_snapshot_identifier             = "${var.name_prefix}-postgres-final"
  auto_minor_version_upgrade            = true
  iam_database_authentication_enabled   = true
  performance_insights_enabled          = true
  performance_insights_kms_key_id       = module.kms.arn
  performance_insights_retention_period = 7
  monitoring_interval                   = var.monitoring_interval_s
  monitoring_role_arn                   = var.monitoring_interval_s > 0 ? aws_iam_role.monitoring.arn : null
  enabled_cloudwatch_logs_exports       = ["postgresql", "upgrade"]
  tags                                  = var.tags
  depends_on                            = [aws_cloudwatch_log_group.postgres]
}
