variable "name_prefix" {
  type        = string
  description = "Prefix of every resource name, e.g. \"dataplatform-dev\"."
}

variable "vpc_id" {
  type        = string
  description = "VPC the brokers run in."
}

variable "subnet_ids" {
  type        = list(string)
  description = "Private subnets, one per broker availability zone (the broker count is a multiple of their number)."
}

variable "client_security_group_ids" {
  type        = map(string)
  description = "Security groups of the clients (ingestor Lambda, Spark jobs) allowed to reach the brokers' IAM listener, by component name (static keys: the rules are planned before the groups exist)."
  default     = {}
}

variable "kafka_version" {
  type        = string
  description = "Apache Kafka version of the cluster (natively Kafka 4.1 in KRaft mode; the clients speak to either, so take the newest version MSK offers)."
  default     = "3.9.x"
}

variable "broker_count" {
  type        = number
  description = "Number of broker nodes (a multiple of the number of subnets)."
  default     = 3
}

variable "broker_instance_type" {
  type        = string
  description = "Broker instance type, e.g. kafka.t3.small (dev) or kafka.m7g.large (prod)."
  default     = "kafka.t3.small"
}

variable "broker_volume_gib" {
  type        = number
  description = "EBS volume per broker, GiB."
  default     = 100
}

variable "default_replication_factor" {
  type        = number
  description = "default.replication.factor of the cluster (at most broker_count)."
  default     = 3
}

variable "min_insync_replicas" {
  type        = number
  description = "min.insync.replicas of the cluster; with acks=all (the ingestor) a write needs this many replicas."
  default     = 2
}

variable "log_retention_days" {
  type        = number
  description = "Days the broker logs are kept in CloudWatch."
  default     = 365
}

variable "tags" {
  type        = map(string)
  description = "Tags added to every resource."
  default     = {}
}
