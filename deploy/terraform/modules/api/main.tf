# The ingest API: an HTTP API in front of the ingest Lambda (FastAPI through Mangum).
# Callers authenticate with a JWT (validated by API Gateway) or with SigV4 (IAM); the
# application's own API keys and tenant checks apply on top. The stage throttles, and
# its access log carries request metadata only: no source IP, no user agent, no
# principal, no query string, no body.

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}
data "aws_region" "current" {}

locals {
  is_kafka = var.kafka_cluster_arn != null
  region   = data.aws_region.current.name
  # GetParametersByPath is authorised on the path itself (parameter/<path without the
  # trailing slash>); GetParameter on each parameter under it.
  api_keys_path_arn = "arn:${data.aws_partition.current.partition}:ssm:${local.region}:${data.aws_caller_identity.current.account_id}:parameter${trimsuffix(var.api_keys_ssm_path, "/")}"
  jwt               = var.auth_mode == "jwt"
  access_log_format = jsonencode({
    requestId          = "$context.requestId"
    requestTime        = "$context.requestTime"
    httpMethod         = "$context.httpMethod"
    routeKey           = "$context.routeKey"
    protocol           = "$context.protocol"
    status             = "$context.status"
    responseLength     = "$context.responseLength"
    responseLatency    = "$context.responseLatency"
    integrationStatus  = "$context.integrationStatus"
    integrationLatency = "$context.integrationLatency"
    integrationError   = "$context.integrationErrorMessage"
    authorizerError    = "$context.authorizer.error"
  })
}

data "aws_iam_policy_document" "publish" {
  dynamic "statement" {
    for_each = length(var.kinesis_stream_arns) > 0 ? [1] : []
    content {
      sid       = "PublishToEventStreams"
      actions   = ["kinesis:PutRecord", "kinesis:PutRecords", "kinesis:DescribeStreamSummary", "kinesis:ListShards"]
      resources = var.kinesis_stream_arns
    }
  }

  dynamic "statement" {
    for_each = length(var.kinesis_stream_arns) > 0 ? [1] : []
    content {
      sid       = "EncryptStreamRecords"
      actions   = ["kms:GenerateDataKey"]
      resources = [var.kms_key_arn]
    }
  }

  dynamic "statement" {
    for_each = local.is_kafka ? [1] : []
    content {
      sid       = "ConnectToCluster"
      actions   = ["kafka-cluster:Connect", "kafka-cluster:DescribeCluster", "kafka-cluster:WriteDataIdempotently"]
      resources = [var.kafka_cluster_arn]
    }
  }

  dynamic "statement" {
    for_each = local.is_kafka ? [1] : []
    content {
      sid       = "WriteEventTopics"
      actions   = ["kafka-cluster:DescribeTopic", "kafka-cluster:WriteData"]
      resources = var.kafka_topic_arns
    }
  }

  statement {
    sid       = "ReadApiKeyRecords"
    actions   = ["ssm:GetParametersByPath"]
    resources = [local.api_keys_path_arn]
  }

  statement {
    sid       = "DecryptApiKeyRecords"
    actions   = ["kms:Decrypt"]
    resources = [var.kms_key_arn]
    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["ssm.${local.region}.amazonaws.com"]
    }
  }

  dynamic "statement" {
    for_each = length(var.secret_arns) > 0 ? [1] : []
    content {
      sid       = "ReadOwnSecrets"
      actions   = ["secretsmanager:GetSecretValue"]
      resources = var.secret_arns
    }
  }
}

module "function" {
  source = "../lambda"

  function_name        = "${var.name}-ingest-api"
  description          = "Sluice ingest API (FastAPI through Mangum)"
  handler              = "ingest_api.lambda_function.lambda_handler"
  package_path         = var.package_path
  memory_mb            = var.memory_mb
  timeout_seconds      = var.timeout_seconds
  reserved_concurrency = var.reserved_concurrency
  environment          = var.environment
  kms_key_arn          = var.kms_key_arn
  subnet_ids           = var.subnet_ids
  security_group_ids   = var.security_group_ids
  policy_json          = data.aws_iam_policy_document.publish.json
  log_retention_days   = var.log_retention_days
  tags                 = var.tags

  runtime      = var.lambda_platform.runtime
  architecture = var.lambda_platform.architecture
}

resource "aws_apigatewayv2_api" "this" {
  name          = "${var.name}-ingest"
  description   = "Sluice ingest API"
  protocol_type = "HTTP"
  tags          = var.tags
}

resource "aws_apigatewayv2_authorizer" "jwt" {
  count = local.jwt ? 1 : 0

  api_id           = aws_apigatewayv2_api.this.id
  name             = "jwt"
  authorizer_type  = "JWT"
  identity_sources = ["$request.header.Authorization"]

  jwt_configuration {
    issuer   = var.jwt_issuer
    audience = var.jwt_audience
  }

  lifecycle {
    precondition {
      condition     = var.jwt_issuer != null && length(var.jwt_audience) > 0
      error_message = "auth_mode = \"jwt\" needs jwt_issuer and at least one jwt_audience (or use auth_mode = \"iam\")."
    }
  }
}

resource "aws_apigatewayv2_integration" "lambda" {
  api_id                 = aws_apigatewayv2_api.this.id
  integration_type       = "AWS_PROXY"
  integration_uri        = module.function.invoke_arn
  payload_format_version = "2.0"
  timeout_milliseconds   = var.integration_timeout_ms
}

resource "aws_apigatewayv2_route" "this" {
  for_each = toset(var.routes)

  api_id               = aws_apigatewayv2_api.this.id
  route_key            = each.value
  target               = "integrations/${aws_apigatewayv2_integration.lambda.id}"
  authorization_type   = local.jwt ? "JWT" : "AWS_IAM"
  authorizer_id        = local.jwt ? aws_apigatewayv2_authorizer.jwt[0].id : null
  authorization_scopes = local.jwt && length(var.jwt_scopes) > 0 ? var.jwt_scopes : null
}

resource "aws_cloudwatch_log_group" "access" {
  name              = "/sluice/${var.name}/api-access"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
  tags              = var.tags
}

resource "aws_apigatewayv2_stage" "this" {
  api_id      = aws_apigatewayv2_api.this.id
  name        = "$default"
  auto_deploy = true
  tags        = var.tags

  default_route_settings {
    throttling_burst_limit   = var.throttling_burst_limit
    throttling_rate_limit    = var.throttling_rate_limit
    detailed_metrics_enabled = true
  }

  access_log_settings {
    destination_arn = aws_cloudwatch_log_group.access.arn
    format          = local.access_log_format
  }
}

resource "aws_lambda_permission" "api" {
  statement_id  = "AllowHttpApiInvoke"
  action        = "lambda:InvokeFunction"
  function_name = module.function.function_name
  principal     = "apigateway.amazonaws.com"
  source_arn    = "${aws_apigatewayv2_api.this.execution_arn}/*/*"
}
