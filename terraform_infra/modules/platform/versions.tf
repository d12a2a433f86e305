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
}
