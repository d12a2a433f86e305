output "api_endpoint" {
  description = "Base URL of the HTTP API (what clients use instead of http://127.0.0.1:8000)."
  value       = aws_apigatewayv2_api.ingestor.api_endpoint
}

output "function_name" {
  description = "Name of the ingestor function (runbooks/ingestor_overload.md changes its reserved concurrency)."
  value       = aws_lambda_function.ingestor.function_name
}

output "function_arn" {
  description = "ARN of the ingestor function."
  value       = aws_lambda_function.ingestor.arn
}

output "role_arn" {
  description = "Execution role of the function."
  value       = aws_iam_role.ingestor.arn
}

output "security_group_id" {
  description = "Security group of the function (allowed in by MSK and RDS)."
  value       = aws_security_group.lambda.id
}
