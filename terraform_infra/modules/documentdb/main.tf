# Amazon DocumentDB for the documents domain (MongoDB natively): TLS enforced, storage encrypted
# with a customer-managed key, audit and profiler logs exported, master password in Secrets
# Manager managed by the service.

module "kms" {
  source      = "../kms_key"
  description = "${var.name_prefix} DocumentDB storage and master secret"
  tags        = var.tags
}

resource "aws_docdb_subnet_group" "this" {
  name       = "${var.name_prefix}-docdb"
  subnet_ids = var.subnet_ids
  tags       = var.tags
}

resource "aws_security_group" "docdb" {
  name        = "${var.name_prefix}-docdb"
  description = "DocumentDB: the platform's readers only"
  vpc_id      = var.vpc_id
  tags        = var.tags
}

resource "aws_vpc_security_group_ingress_rule" "mongodb" {
  for_each                     = var.client_security_group_ids
  security_group_id            = aws_security_group.docdb.id
  description                  = "MongoDB wire protocol from a platform component"
  referenced_security_group_id = each.value
  ip_protocol                  = "tcp"
  from_port                    = var.port
  to_port                      = var.port
}

resource "aws_docdb_cluster_parameter_group" "this" {
  name   = "${var.name_prefix}-docdb5"
  family = "docdb5.0"
  parameter {
    name  = "tls"
    value = "enabled"
  }
  parameter {
    name  = "audit_logs"
    value = "enabled"
  }
  parameter {
    name  = "profiler"
    value = "enabled"
  }
  tags = var.tags
}

resource "aws_cloudwatch_log_group" "docdb" {
  for_each          = toset(["audit", "profiler"])
  name              = "/aws/docdb/${var.name_prefix}-docdb/${each.value}"
  retention_in_days = var.log_retention_days
  kms_key_id        = module.kms.arn
  tags              = var.tags
}

resource "aws_docdb_cluster" "this" {
  cluster_identifier              = "${var.name_prefix}-docdb"
  engine                          = "docdb"
  engine_version                  = var.engine_version
  port                            = var.port
  master_username                 = var.master_username
  manage_master_user_password     = true
  db_subnet_group_name            = aws_docdb_subnet_group.this.name
  vpc_security_group_ids          = [aws_security_group.docdb.id]
  db_cluster_parameter_group_name = aws_docdb_cluster_parameter_group.this.name
  storage_encrypted               = true
  kms_key_id                      = module.kms.arn
  backup_retention_period         = var.backup_retention_days
  preferred_backup_window         = "02:00-03:00"
  deletion_protection             = var.deletion_protection
  skip_final_snapshot             = false
  final_snapshot_identifier       = "${var.name_prefix}-docdb-final"
  enabled_cloudwatch_logs_exports = ["audit", "profiler"]
  tags                            = var.tags
  depends_on                      = [aws_cloudwatch_log_group.docdb]
}

resource "aws_docdb_cluster_instance" "this" {
  count                      = var.instance_count
  identifier                 = "${var.name_prefix}-docdb-${count.index}"
  cluster_identifier         = aws_docdb_cluster.this.id
  instance_class             = var.instance_class
  auto_minor_version_upgrade = true
  tags                       = var.tags
}
