# Shared by every environment (each environment's versions.tf is a link to this file).

terraform {
  required_version = ">= 1.6.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 6.0.0, < 7.0.0"
    }
    kafka = {
      source  = "Mongey/kafka"
      version = ">= 0.8.0, < 1.0.0"
    }
  }

  # Partial configuration: `terraform init -backend-config=backend.hcl` (bucket, key, region,
  # dynamodb_table or use_lockfile) so no account detail lives in the repository.
  backend "s3" {}
}

provider "aws" {
  region = var.aws_region
  default_tags {
    tags = module.platform.tags
  }
}

# Topics are created through the Kafka protocol on the cluster's SASL/IAM listener. On the very
# first apply the brokers do not exist yet: apply `-target=module.platform.module.msk` first (docs/CLOUD.md).
provider "kafka" {
  bootstrap_servers = split(",", module.platform.kafka_bootstrap_servers)
  tls_enabled       = true
  sasl_mechanism    = "aws-iam"
  sasl_aws_region   = var.aws_region
}
