# Amazon MSK: TLS in transit (client and in-cluster), IAM authentication only, encryption at rest
# with a customer-managed key, broker logs to CloudWatch. Topics are created by the kafka_topics
# module (auto-creation is off, as natively).

module "kms" {
  source      = "../kms_key"
  description = "${var.name_prefix} MSK at rest and its CloudWatch logs"
  tags        = var.tags
}

resource "aws_security_group" "msk" {
  name        = "${var.name_prefix}-msk"
  description = "MSK brokers: the IAM/TLS listener for the platform's clients"
  vpc_id      = var.vpc_id
  tags        = var.tags
}

resource "aws_vpc_security_group_ingress_rule" "iam_listener" {
  for_each                     = var.client_security_group_ids
  security_group_id            = aws_security_group.msk.id
  description                  = "Kafka clients, SASL/IAM over TLS"
  referenced_security_group_id = each.value
  ip_protocol                  = "tcp"
  from_port                    = 9098
  to_port                      = 9098
}

resource "aws_cloudwatch_log_group" "broker" {
  name              = "/aws/msk/${var.name_prefix}"
  retention_in_days = var.log_retention_days
  kms_key_id        = module.kms.arn
  tags              = var.tags
}

resource "aws_msk_configuration" "this" {
  name           = "${var.name_prefix}-kafka"
  kafka_versions = [var.kafka_version]
  # As natively: topics are declared, never created by a stray producer.
  server_properties = <<-PROPERTIES
    auto.create.topics.enable=false
    default.replication.factor=${var.default_replication_factor}
    min.insync.replicas=${var.min_insync_replicas}
    unclean.leader.election.enable=false
  PROPERTIES
}

resource "aws_msk_cluster" "this" {
  cluster_name           = "${var.name_prefix}-kafka"
  kafka_version          = var.kafka_version
  number_of_broker_nodes = var.broker_count
  enhanced_monitoring    = "PER_TOPIC_PER_PARTITION"

  broker_node_group_info {
    instance_type   = var.broker_instance_type
    client_subnets  = var.subnet_ids
    security_groups = [aws_security_group.msk.id]
    storage_info {
      ebs_storage_info {
        volume_size = var.broker_volume_gib
      }
    }
    connectivity_info {
      public_access {
        type = "DISABLED"
      }
    }
  }

  configuration_info {
    arn      = aws_msk_configuration.this.arn
    revision = aws_msk_configuration.this.latest_revision
  }

  client_authentication {
    unauthenticated = false
    sasl {
      iam = true
    }
  }

  encryption_info {
    encryption_at_rest_kms_key_arn = module.kms.arn
    encryption_in_transit {
      client_broker = "TLS"
      in_cluster    = true
    }
  }

  open_monitoring {
    prometheus {
      jmx_exporter {
        enabled_in_broker = true
      }
      node_exporter {
        enabled_in_broker = true
      }
    }
  }

  logging_info {
    broker_logs {
      cloudwatch_logs {
        enabled   = true
        log_group = aws_cloudwatch_log_group.broker.name
      }
    }
  }

  tags = var.tags
}

locals {
  # MSK's ARNs for IAM authorisation: topic/<cluster name>/<cluster uuid>/<topic>.
  cluster_uuid     = element(split("/", aws_msk_cluster.this.arn), 2)
  topic_arn_prefix = "${replace(aws_msk_cluster.this.arn, ":cluster/", ":topic/")}/"
  group_arn_prefix = "${replace(aws_msk_cluster.this.arn, ":cluster/", ":group/")}/"
}
