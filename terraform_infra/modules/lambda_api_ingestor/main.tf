# The ingestor as a Lambda container image behind an API Gateway HTTP API (payload format 2.0):
# the same FastAPI app, served through Mangum (fastapi_app/lambda_handler.py). One role with
# only what the ingestor does: write to its two topics, read one secret, write its logs.

data "aws_region" "current" {}

module "kms" {
  source      = "../kms_key"
  description = "${var.name_prefix} ingestor environment and logs"
  tags        = var.tags
}

resource "aws_security_group" "lambda" {
  name        = "${var.name_prefix}-ingestor"
  description = "Ingestor Lambda: outbound to MSK, RDS and AWS APIs only"
  vpc_id      = var.vpc_id
  tags        = var.tags
}

resource "aws_vpc_security_group_egress_rule" "https" {
  security_group_id = aws_security_group.lambda.id
  description       = "AWS APIs (Secrets Manager) over HTTPS"
  cidr_ipv4         = "0.0.0.0/0"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
}

resource "aws_vpc_security_group_egress_rule" "msk" {
  security_group_id = aws_security_group.lambda.id
  description       = "MSK SASL/IAM listener"
  cidr_ipv4         = "0.0.0.0/0"
  ip_protocol       = "tcp"
  from_port         = 9098
  to_port           = 9098
}

resource "aws_vpc_security_group_egress_rule" "postgres" {
  security_group_id = aws_security_group.lambda.id
  description       = "RDS Postgres"
  cidr_ipv4         = "0.0.0.0/0"
  ip_protocol       = "tcp"
  from_port         = var.postgres_port
  to_port           = var.postgres_port
}

data "aws_iam_policy_document" "assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "ingestor" {
  name               = "${var.name_prefix}-ingestor"
  assume_role_policy = data.aws_iam_policy_document.assume.json
  tags               = var.tags
}

resource "aws_cloudwatch_log_group" "function" {
  name              = "/aws/lambda/${var.name_prefix}-ingestor"
  retention_in_days = var.log_retention_days
  kms_key_id        = module.kms.arn
  tags              = var.tags
}

resource "aws_cloudwatch_log_group" "access" {
  name              = "/aws/apigateway/${var.name_prefix}-ingestor"
  retention_in_days = var.log_retention_days
  kms_key_id        = module.kms.arn
  tags              = var.tags
}

data "aws_iam_policy_document" "ingestor" {
  #checkov:skip=CKV_AWS_111:Only the VPC network-interface and X-Ray statements use Resource "*": those actions support no resource-level permissions (AWS's service authorization reference); every other statement names its resources.
  #checkov:skip=CKV_AWS_356:Only the VPC network-interface and X-Ray statements use Resource "*": those actions support no resource-level permissions.
  statement {
    sid       = "Logs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.function.arn}:*"]
  }
  statement {
    # ENIs of a VPC function: these EC2 actions do not support resource-level permissions.
    sid = "VpcNetworkInterfaces"
    actions = [
      "ec2:CreateNetworkInterface",
      "ec2:DescribeNetworkInterfaces",
      "ec2:DeleteNetworkInterface",
      "ec2:AssignPrivateIpAddresses",
      "ec2:UnassignPrivateIpAddresses",
    ]
    resources = ["*"]
  }
  statement {
    sid       = "XRay"
    actions   = ["xray:PutTraceSegments", "xray:PutTelemetryRecords"]
    resources = ["*"]
  }
  statement {
    sid       = "KafkaConnect"
    actions   = ["kafka-cluster:Connect"]
    resources = [var.msk_cluster_arn]
  }
  statement {
    sid       = "KafkaProduce"
    actions   = ["kafka-cluster:DescribeTopic", "kafka-cluster:WriteData"]
    resources = [for t in var.topics : "${var.msk_topic_arn_prefix}${t}"]
  }
  statement {
    sid       = "PostgresPassword"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = [var.postgres_secret_arn]
  }
  statement {
    sid       = "Decrypt"
    actions   = ["kms:Decrypt"]
    resources = [var.postgres_secret_kms_key_arn, module.kms.arn]
  }
}

resource "aws_iam_role_policy" "ingestor" {
  name   = "ingestor"
  role   = aws_iam_role.ingestor.id
  policy = data.aws_iam_policy_document.ingestor.json
}

resource "aws_lambda_function" "ingestor" {
  #checkov:skip=CKV_AWS_116:Invoked synchronously by API Gateway only; a dead-letter queue applies to asynchronous invocations, and a failed request is answered to the client (4xx/503) who retries with its Idempotency-Key.
  #checkov:skip=CKV_AWS_272:Code signing applies to .zip packages; this is a container image, pinned by digest in ECR.
  function_name                  = "${var.name_prefix}-ingestor"
  role                           = aws_iam_role.ingestor.arn
  package_type                   = "Image"
  image_uri                      = var.image_uri
  memory_size                    = var.memory_mb
  timeout                        = var.timeout_s
  reserved_concurrent_executions = var.reserved_concurrency
  kms_key_arn                    = module.kms.arn

  vpc_config {
    subnet_ids         = var.subnet_ids
    security_group_ids = [aws_security_group.lambda.id]
  }

  tracing_config {
    mode = "Active"
  }

  logging_config {
    log_format = "Text"
    log_group  = aws_cloudwatch_log_group.function.name
  }

  environment {
    variables = {
      DATAPLATFORM_ENV            = var.environment
      INGESTOR_SINK               = var.sink
      KAFKA_BOOTSTRAP_SERVERS     = var.kafka_bootstrap_servers
      KAFKA_SECURITY_PROTOCOL     = "SASL_SSL"
      KAFKA_SASL_MECHANISM        = "OAUTHBEARER"
      KAFKA_AWS_REGION            = data.aws_region.current.region
      POSTGRES_HOST               = var.postgres_host
      POSTGRES_PORT               = tostring(var.postgres_port)
      POSTGRES_DB                 = var.postgres_db
      POSTGRES_USER               = var.postgres_user
      POSTGRES_PASSWORD_SECRET_ID = var.postgres_secret_arn
      INGEST_DB_SCHEMA            = "ingest"
      INGESTOR_AUTH_ENABLED       = "true"
    }
  }

  tags       = var.tags
  depends_on = [aws_iam_role_policy.ingestor]
}

resource "aws_apigatewayv2_api" "ingestor" {
  name          = "${var.name_prefix}-ingestor"
  protocol_type = "HTTP"
  description   = "The ingestor's HTTP API (same routes as the native server on :8000)"
  tags          = var.tags
}

resource "aws_apigatewayv2_integration" "ingestor" {
  api_id                 = aws_apigatewayv2_api.ingestor.id
  integration_type       = "AWS_PROXY"
  integration_uri        = aws_lambda_function.ingestor.invoke_arn
  payload_format_version = "2.0"
  timeout_milliseconds   = var.timeout_s * 1000
}

# Every path goes to the app, which authenticates by API key (X-API-Key / Bearer) itself,
# exactly as the native server does; /health and / are public there too.
resource "aws_apigatewayv2_route" "default" {
  #checkov:skip=CKV_AWS_309:Authorisation is the app's own API-key check (X-API-Key or Bearer, keys in Postgres), the same as the native server; a gateway authorizer would duplicate it.
  api_id    = aws_apigatewayv2_api.ingestor.id
  route_key = "$default"
  target    = "integrations/${aws_apigatewayv2_integration.ingestor.id}"
}

resource "aws_apigatewayv2_stage" "default" {
  api_id      = aws_apigatewayv2_api.ingestor.id
  name        = "$default"
  auto_deploy = true

  default_route_settings {
    throttling_rate_limit  = var.throttle_rate_per_s
    throttling_burst_limit = var.throttle_burst
  }

  access_log_settings {
    destination_arn = aws_cloudwatch_log_group.access.arn
    format = jsonencode({
      requestId          = "$context.requestId"
      routeKey           = "$context.routeKey"
      status             = "$context.status"
      integrationStatus  = "$context.integrationStatus"
      integrationLatency = "$context.integrationLatency"
      responseLatency    = "$context.responseLatency"
      sourceIp           = "$context.identity.sourceIp"
    })
  }

  tags = var.tags
}

resource "aws_lambda_permission" "api" {
  statement_id  = "AllowHttpApi"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.ingestor.function_name
  principal     = "apigateway.amazonaws.com"
  source_arn    = "${aws_apigatewayv2_api.ingestor.execution_arn}/*/*"
}
