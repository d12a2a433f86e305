# Amazon MWAA running the same DAGs folder (airflow_dags/ is synced to s3://<dags bucket>/dags/
# by CI). The DAGs bucket is versioned, encrypted and private, as MWAA requires; the web server
# is reachable only inside the VPC.

data "aws_caller_identity" "current" {}
data "aws_region" "current" {}
data "aws_partition" "current" {}

locals {
  environment_name = "${var.name_prefix}-airflow"
  environment_arn  = "arn:${data.aws_partition.current.partition}:airflow:${data.aws_region.current.region}:${data.aws_caller_identity.current.account_id}:environment/${local.environment_name}"
}

module "kms" {
  source      = "../kms_key"
  description = "${var.name_prefix} MWAA environment and DAGs bucket"
  tags        = var.tags
}

resource "aws_s3_bucket" "dags" {
  #checkov:skip=CKV_AWS_18:The DAGs bucket holds code deployed by CI from git, which is the audit trail; CloudTrail records the deploys.
  #checkov:skip=CKV_AWS_144:The DAGs are rebuilt from git in any region; replication adds nothing to recovery.
  #checkov:skip=CKV2_AWS_62:MWAA polls the bucket; nothing consumes event notifications.
  #checkov:skip=CKV2_AWS_61:Versions are what MWAA pins requirements.txt to; old ones are few and small, and are kept deliberately for rollback.
  # MWAA accepts only buckets whose name starts with "airflow-".
  bucket_prefix = "airflow-${var.name_prefix}-"
  tags          = var.tags
}

resource "aws_s3_bucket_public_access_block" "dags" {
  bucket                  = aws_s3_bucket.dags.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_versioning" "dags" {
  bucket = aws_s3_bucket.dags.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "dags" {
  bucket = aws_s3_bucket.dags.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = module.kms.arn
    }
    bucket_key_enabled = true
  }
}

resource "aws_security_group" "mwaa" {
  name        = "${var.name_prefix}-mwaa"
  description = "MWAA: its own components talk to each other; outbound to AWS APIs, RDS"
  vpc_id      = var.vpc_id
  tags        = var.tags
}

resource "aws_vpc_security_group_ingress_rule" "self" {
  security_group_id            = aws_security_group.mwaa.id
  description                  = "MWAA components among themselves (required self-reference)"
  referenced_security_group_id = aws_security_group.mwaa.id
  ip_protocol                  = "-1"
}

resource "aws_vpc_security_group_egress_rule" "all" {
  security_group_id = aws_security_group.mwaa.id
  description       = "AWS APIs (S3, SQS, CloudWatch, EMR Serverless) and RDS"
  cidr_ipv4         = "0.0.0.0/0"
  ip_protocol       = "tcp"
  from_port         = 0
  to_port           = 65535
}

data "aws_iam_policy_document" "assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["airflow.amazonaws.com", "airflow-env.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "mwaa" {
  name               = "${var.name_prefix}-mwaa"
  assume_role_policy = data.aws_iam_policy_document.assume.json
  tags               = var.tags
}

data "aws_iam_policy_document" "mwaa" {
  statement {
    sid       = "PublishMetrics"
    actions   = ["airflow:PublishMetrics"]
    resources = [local.environment_arn]
  }
  statement {
    sid       = "DagsRead"
    actions   = ["s3:GetObject*", "s3:GetBucket*", "s3:List*"]
    resources = [aws_s3_bucket.dags.arn, "${aws_s3_bucket.dags.arn}/*"]
  }
  statement {
    sid       = "BackupsWrite"
    actions   = ["s3:GetObject", "s3:PutObject", "s3:ListBucket"]
    resources = [var.lake_bucket_arn, "${var.lake_bucket_arn}/_backups/*"]
  }
  statement {
    sid = "Logs"
    actions = [
      "logs:CreateLogStream",
      "logs:CreateLogGroup",
      "logs:PutLogEvents",
      "logs:GetLogEvents",
      "logs:GetLogRecord",
      "logs:GetLogGroupFields",
      "logs:GetQueryResults",
    ]
    resources = ["arn:${data.aws_partition.current.partition}:logs:${data.aws_region.current.region}:${data.aws_caller_identity.current.account_id}:log-group:airflow-${local.environment_name}-*"]
  }
  statement {
    # Metric publishing takes no resource ARN.
    sid       = "Metrics"
    actions   = ["cloudwatch:PutMetricData"]
    resources = ["*"]
  }
  statement {
    sid = "CeleryQueue"
    actions = [
      "sqs:ChangeMessageVisibility",
      "sqs:DeleteMessage",
      "sqs:GetQueueAttributes",
      "sqs:GetQueueUrl",
      "sqs:ReceiveMessage",
      "sqs:SendMessage",
    ]
    resources = ["arn:${data.aws_partition.current.partition}:sqs:${data.aws_region.current.region}:*:airflow-celery-*"]
  }
  statement {
    sid       = "Keys"
    actions   = ["kms:Decrypt", "kms:DescribeKey", "kms:GenerateDataKey*", "kms:Encrypt"]
    resources = [module.kms.arn, var.lake_kms_key_arn]
  }
  statement {
    sid       = "SparkJobRuns"
    actions   = ["emr-serverless:StartJobRun", "emr-serverless:GetJobRun", "emr-serverless:CancelJobRun"]
    resources = [var.emr_application_arn, "${var.emr_application_arn}/jobruns/*"]
  }
  statement {
    sid       = "PassSparkRole"
    actions   = ["iam:PassRole"]
    resources = [var.emr_job_role_arn]
    condition {
      test     = "StringEquals"
      variable = "iam:PassedToService"
      values   = ["emr-serverless.amazonaws.com"]
    }
  }
}

resource "aws_iam_role_policy" "mwaa" {
  name   = "mwaa"
  role   = aws_iam_role.mwaa.id
  policy = data.aws_iam_policy_document.mwaa.json
}

resource "aws_mwaa_environment" "this" {
  name                            = local.environment_name
  airflow_version                 = var.airflow_version
  environment_class               = var.environment_class
  max_workers                     = var.max_workers
  execution_role_arn              = aws_iam_role.mwaa.arn
  kms_key                         = module.kms.arn
  source_bucket_arn               = aws_s3_bucket.dags.arn
  dag_s3_path                     = "dags/"
  requirements_s3_path            = "requirements.txt"
  webserver_access_mode           = "PRIVATE_ONLY"
  airflow_configuration_options   = merge({ "core.load_examples" = "false" }, var.airflow_configuration_options)
  weekly_maintenance_window_start = "SUN:03:00"

  network_configuration {
    security_group_ids = [aws_security_group.mwaa.id]
    subnet_ids         = var.subnet_ids
  }

  logging_configuration {
    dag_processing_logs {
      enabled   = true
      log_level = "INFO"
    }
    scheduler_logs {
      enabled   = true
      log_level = "INFO"
    }
    task_logs {
      enabled   = true
      log_level = "INFO"
    }
    webserver_logs {
      enabled   = true
      log_level = "WARNING"
    }
    worker_logs {
      enabled   = true
      log_level = "INFO"
    }
  }

  tags       = var.tags
  depends_on = [aws_iam_role_policy.mwaa, aws_s3_bucket_versioning.dags]
}
