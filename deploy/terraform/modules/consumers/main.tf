# What the consumer groups (`sluice consume`) need besides the streams: on Kinesis the
# DynamoDB lease / checkpoint tables (one per group and stream, named as the consumers
# name them: <lease_table_prefix><group>.<stream>; on Kafka the checkpoints are the
# group's committed offsets), the dead-letter stream (a Kinesis stream, or a topic on the
# MSK cluster that the application creates), and a role for the consumer processes (ECS
# tasks by default) scoped to exactly these resources.

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}
data "aws_region" "current" {}

locals {
  is_kafka      = var.backend == "kafka"
  region        = data.aws_region.current.name
  dlq_topic_arn = local.is_kafka ? "${var.kafka_topic_arn_prefix}/${var.dlq_name}" : null
  dlq_arn       = local.is_kafka ? local.dlq_topic_arn : aws_kinesis_stream.dlq[0].arn
  lease_tables = local.is_kafka ? {} : {
    for pair in setproduct(var.consumer_groups, var.consumed_streams) :
    "${pair[0]}.${pair[1]}" => "${var.lease_table_prefix}${pair[0]}.${pair[1]}"
  }
}

resource "aws_dynamodb_table" "leases" {
  for_each = local.lease_tables

  name                        = each.value
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = var.lease_table_hash_key
  deletion_protection_enabled = var.deletion_protection
  tags                        = var.tags

  attribute {
    name = var.lease_table_hash_key
    type = "S"
  }

  point_in_time_recovery {
    enabled = true
  }

  server_side_encryption {
    enabled     = true
    kms_key_arn = var.kms_key_arn
  }
}

resource "aws_kinesis_stream" "dlq" {
  count = local.is_kafka ? 0 : 1

  name             = var.dlq_name
  retention_period = var.dlq_retention_hours
  encryption_type  = "KMS"
  kms_key_id       = var.kms_key_arn
  tags             = merge(var.tags, { Role = "sluice-dlq" })

  shard_level_metrics = ["IncomingRecords", "IteratorAgeMilliseconds"]

  stream_mode_details {
    stream_mode = "ON_DEMAND"
  }
}

# --- Consumer role -------------------------------------------------------------------

data "aws_iam_policy_document" "assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = var.consumer_principal_services
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [data.aws_caller_identity.current.account_id]
    }
  }
}

resource "aws_iam_role" "consumer" {
  name               = "${var.name}-consumer"
  description        = "Sluice consumer groups: read the event streams, checkpoint, write the DLQ"
  assume_role_policy = data.aws_iam_policy_document.assume.json
  tags               = var.tags
}

data "aws_iam_policy_document" "consumer" {
  dynamic "statement" {
    for_each = local.is_kafka ? [] : [1]
    content {
      sid = "LeasesAndCheckpoints"
      actions = [
        "dynamodb:DescribeTable",
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
        "dynamodb:Query",
        "dynamodb:Scan",
      ]
      resources = [for table in aws_dynamodb_table.leases : table.arn]
    }
  }

  dynamic "statement" {
    for_each = local.is_kafka ? [] : [1]
    content {
      sid = "ReadEventStreams"
      actions = [
        "kinesis:DescribeStream",
        "kinesis:DescribeStreamSummary",
        "kinesis:GetShardIterator",
        "kinesis:GetRecords",
        "kinesis:ListShards",
      ]
      resources = concat(var.kinesis_stream_arns, [local.dlq_arn])
    }
  }

  dynamic "statement" {
    for_each = local.is_kafka ? [] : [1]
    content {
      sid       = "WriteDeadLetterStream"
      actions   = ["kinesis:PutRecord", "kinesis:PutRecords"]
      resources = [local.dlq_arn]
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
      sid       = "ReadEventTopics"
      actions   = ["kafka-cluster:DescribeTopic", "kafka-cluster:ReadData"]
      resources = concat(var.kafka_topic_arns, [local.dlq_arn])
    }
  }

  dynamic "statement" {
    for_each = local.is_kafka ? [1] : []
    content {
      sid       = "WriteDeadLetterTopic"
      actions   = ["kafka-cluster:WriteData"]
      resources = [local.dlq_arn]
    }
  }

  dynamic "statement" {
    for_each = local.is_kafka ? [1] : []
    content {
      sid       = "OwnConsumerGroups"
      actions   = ["kafka-cluster:DescribeGroup", "kafka-cluster:AlterGroup"]
      resources = ["${var.kafka_group_arn_prefix}/${var.consumer_group_prefix}*"]
    }
  }

  statement {
    sid       = "UseEnvironmentKey"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [var.kms_key_arn]
  }

  # PutMetricData has no resource-level permissions (AWS requires "*"); the condition
  # keeps it to the Sluice namespace.
  statement {
    sid       = "PublishSluiceMetrics"
    actions   = ["cloudwatch:PutMetricData"]
    resources = ["*"]
    condition {
      test     = "StringEquals"
      variable = "cloudwatch:namespace"
      values   = [var.metric_namespace]
    }
  }

  dynamic "statement" {
    for_each = var.warehouse_workgroup_arn == null ? [] : [var.warehouse_workgroup_arn]
    content {
      sid       = "TemporaryWarehouseCredentials"
      actions   = ["redshift-serverless:GetCredentials"]
      resources = [statement.value]
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

resource "aws_iam_role_policy" "consumer" {
  name   = "consume"
  role   = aws_iam_role.consumer.id
  policy = data.aws_iam_policy_document.consumer.json
}
