# Spark on EMR Serverless running the same entry points as natively: each job is the module
# file of pyspark_jobs (landing, curation, quality, maintenance) submitted with the same
# arguments `dataplatform run <job>` passes. The application is the compute; job runs are API
# calls (MWAA's EmrServerlessStartJobOperator or `aws emr-serverless start-job-run`).

data "aws_caller_identity" "current" {}
data "aws_region" "current" {}

locals {
  # pyspark_jobs/<file>.py entry points and their native CLI equivalents.
  jobs = {
    landing     = { script = "landing.py", native = "dataplatform run landing" }
    curation    = { script = "curation.py", native = "dataplatform run curation" }
    quality     = { script = "quality.py", native = "dataplatform run quality" }
    maintenance = { script = "maintenance.py", native = "dataplatform lake optimize|vacuum|history|restore" }
  }
  # EMR 7 bundles Delta; the project's wheel (dataplatform + pyspark_jobs) goes on --py-files.
  spark_submit_parameters = join(" ", [
    "--py-files ${var.artifacts_uri}/dataplatform.whl",
    # MSK's IAM login classes (aws-msk-iam-auth, uploaded with the artifacts) for the Kafka source.
    "--conf spark.jars=/usr/share/aws/delta/lib/delta-spark.jar,/usr/share/aws/delta/lib/delta-storage.jar,${var.artifacts_uri}/aws-msk-iam-auth.jar",
    "--conf spark.sql.extensions=io.delta.sql.DeltaSparkSessionExtension",
    "--conf spark.sql.catalog.spark_catalog=org.apache.spark.sql.delta.catalog.DeltaCatalog",
    # MSK's IAM listener: the same KAFKA_* settings as the ingestor (dataplatform.settings).
    "--conf spark.emr-serverless.driverEnv.KAFKA_SECURITY_PROTOCOL=SASL_SSL",
    "--conf spark.emr-serverless.driverEnv.KAFKA_SASL_MECHANISM=AWS_MSK_IAM",
    "--conf spark.emr-serverless.driverEnv.KAFKA_AWS_REGION=${data.aws_region.current.region}",
  ])
  log_group = "/aws/emr-serverless/${var.name_prefix}"
}

resource "aws_security_group" "spark" {
  #checkov:skip=CKV2_AWS_5:Attached through the EMR Serverless application's network_configuration, which this graph check does not follow.
  name        = "${var.name_prefix}-spark"
  description = "EMR Serverless jobs: outbound to MSK, RDS and AWS APIs"
  vpc_id      = var.vpc_id
  tags        = var.tags
}

resource "aws_vpc_security_group_egress_rule" "https" {
  security_group_id = aws_security_group.spark.id
  description       = "S3, KMS, Secrets Manager, CloudWatch over HTTPS"
  cidr_ipv4         = "0.0.0.0/0"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
}

resource "aws_vpc_security_group_egress_rule" "msk" {
  security_group_id = aws_security_group.spark.id
  description       = "MSK SASL/IAM listener"
  cidr_ipv4         = "0.0.0.0/0"
  ip_protocol       = "tcp"
  from_port         = 9098
  to_port           = 9098
}

resource "aws_vpc_security_group_egress_rule" "postgres" {
  security_group_id = aws_security_group.spark.id
  description       = "RDS Postgres (reference data)"
  cidr_ipv4         = "0.0.0.0/0"
  ip_protocol       = "tcp"
  from_port         = 5432
  to_port           = 5432
}

resource "aws_emrserverless_application" "spark" {
  name          = "${var.name_prefix}-spark"
  release_label = var.release_label
  type          = "spark"

  maximum_capacity {
    cpu    = var.max_cpu
    memory = var.max_memory
  }

  auto_start_configuration {
    enabled = true
  }

  auto_stop_configuration {
    enabled              = true
    idle_timeout_minutes = var.idle_timeout_minutes
  }

  network_configuration {
    subnet_ids         = var.subnet_ids
    security_group_ids = [aws_security_group.spark.id]
  }

  tags = var.tags
}

resource "aws_cloudwatch_log_group" "jobs" {
  name              = local.log_group
  retention_in_days = var.log_retention_days
  kms_key_id        = var.lake_kms_key_arn
  tags              = var.tags
}

data "aws_iam_policy_document" "assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["emr-serverless.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [data.aws_caller_identity.current.account_id]
    }
  }
}

resource "aws_iam_role" "job" {
  name               = "${var.name_prefix}-spark-job"
  assume_role_policy = data.aws_iam_policy_document.assume.json
  tags               = var.tags
}

data "aws_iam_policy_document" "job" {
  statement {
    sid       = "LakeList"
    actions   = ["s3:ListBucket", "s3:GetBucketLocation"]
    resources = [var.lake_bucket_arn]
  }
  statement {
    sid       = "LakeReadWrite"
    actions   = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"]
    resources = ["${var.lake_bucket_arn}/*"]
  }
  statement {
    sid       = "ArtifactsRead"
    actions   = ["s3:GetObject", "s3:ListBucket"]
    resources = [var.artifacts_bucket_arn, "${var.artifacts_bucket_arn}/*"]
  }
  statement {
    sid       = "LakeKey"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [var.lake_kms_key_arn]
  }
  statement {
    sid       = "KafkaConnect"
    actions   = ["kafka-cluster:Connect"]
    resources = [var.msk_cluster_arn]
  }
  statement {
    sid       = "KafkaRead"
    actions   = ["kafka-cluster:DescribeTopic", "kafka-cluster:ReadData"]
    resources = [for t in var.topics : "${var.msk_topic_arn_prefix}${t}"]
  }
  statement {
    sid       = "KafkaGroups"
    actions   = ["kafka-cluster:DescribeGroup", "kafka-cluster:AlterGroup"]
    resources = ["${var.msk_group_arn_prefix}spark-kafka-source-*"]
  }
  statement {
    sid       = "PostgresPassword"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = [var.postgres_secret_arn]
  }
  statement {
    sid       = "SecretKey"
    actions   = ["kms:Decrypt"]
    resources = [var.postgres_secret_kms_key_arn]
  }
  statement {
    sid       = "Logs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"]
    resources = ["${aws_cloudwatch_log_group.jobs.arn}:*"]
  }
}

resource "aws_iam_role_policy" "job" {
  name   = "spark-job"
  role   = aws_iam_role.job.id
  policy = data.aws_iam_policy_document.job.json
}
