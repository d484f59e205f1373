# Delivery: one Firehose stream per event type reads its Kinesis stream or MSK topic,
# has each batch cleaned by the transform Lambda, and writes gzip NDJSON into the S3
# zone under clean/event_type=<type>/dt=YYYY-MM-DD/ (dynamic partitioning on the
# partition keys the transform returns). Records the transform marks
# ProcessingFailed (and batches Firehose could not deliver) land under
# errors/<error-output-type>/YYYY/MM/DD/HH/, in Firehose's error-record format.

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}
data "aws_region" "current" {}

locals {
  is_kafka   = var.backend == "kafka"
  partition  = data.aws_partition.current.partition
  account_id = data.aws_caller_identity.current.account_id
  region     = data.aws_region.current.name
  # Object prefixes the Firehose role may write, relative to the bucket.
  write_prefixes = concat(
    [var.clean_prefix, var.error_prefix],
    var.raw_backup_enabled ? [var.raw_prefix] : [],
  )
}

# --- Transform function --------------------------------------------------------------

data "aws_iam_policy_document" "transform" {
  dynamic "statement" {
    for_each = length(var.transform_secret_arns) > 0 ? [1] : []
    content {
      sid       = "ReadOwnSecrets"
      actions   = ["secretsmanager:GetSecretValue"]
      resources = var.transform_secret_arns
    }
  }
}

module "transform" {
  source = "../lambda"

  function_name        = "${var.name}-firehose-transform"
  description          = "Sluice Firehose transform: decode, clean, mask PII"
  handler              = "firehose_transforms.lambda_function.lambda_handler"
  package_path         = var.transform_package_path
  memory_mb            = var.transform_memory_mb
  timeout_seconds      = var.transform_timeout_seconds
  reserved_concurrency = var.transform_reserved_concurrency
  environment          = var.transform_environment
  kms_key_arn          = var.kms_key_arn
  subnet_ids           = var.subnet_ids
  security_group_ids   = var.security_group_ids
  policy_json          = data.aws_iam_policy_document.transform.json
  log_retention_days   = var.log_retention_days
  tags                 = var.tags

  runtime      = var.lambda_platform.runtime
  architecture = var.lambda_platform.architecture
}

# --- Firehose role -------------------------------------------------------------------

data "aws_iam_policy_document" "firehose_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["firehose.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "sts:ExternalId"
      values   = [local.account_id]
    }
  }
}

resource "aws_iam_role" "firehose" {
  name               = "${var.name}-firehose"
  description        = "Firehose delivery of the Sluice event streams into the S3 zone"
  assume_role_policy = data.aws_iam_policy_document.firehose_assume.json
  tags               = var.tags
}

data "aws_iam_policy_document" "firehose" {
  dynamic "statement" {
    for_each = local.is_kafka ? [] : [1]
    content {
      sid = "ReadSourceStreams"
      actions = [
        "kinesis:DescribeStream",
        "kinesis:DescribeStreamSummary",
        "kinesis:GetShardIterator",
        "kinesis:GetRecords",
        "kinesis:ListShards",
      ]
      resources = values(var.kinesis_stream_arns)
    }
  }

  dynamic "statement" {
    for_each = local.is_kafka ? [] : [1]
    content {
      sid       = "DecryptSourceStreams"
      actions   = ["kms:Decrypt"]
      resources = [var.kms_key_arn]
      condition {
        test     = "StringEquals"
        variable = "kms:ViaService"
        values   = ["kinesis.${local.region}.amazonaws.com"]
      }
    }
  }

  dynamic "statement" {
    for_each = local.is_kafka ? [1] : []
    content {
      sid = "ConnectToSourceCluster"
      actions = [
        "kafka:GetBootstrapBrokers",
        "kafka:DescribeCluster",
        "kafka:DescribeClusterV2",
        "kafka-cluster:Connect",
        "kafka-cluster:DescribeCluster",
      ]
      resources = [var.kafka_cluster_arn]
    }
  }

  dynamic "statement" {
    for_each = local.is_kafka ? [1] : []
    content {
      sid = "ReadSourceTopics"
      actions = [
        "kafka-cluster:DescribeTopic",
        "kafka-cluster:DescribeTopicDynamicConfiguration",
        "kafka-cluster:ReadData",
      ]
      resources = values(var.kafka_topic_arns)
    }
  }

  statement {
    sid     = "InvokeTransform"
    actions = ["lambda:InvokeFunction", "lambda:GetFunctionConfiguration"]
    resources = [
      module.transform.function_arn,
      "${module.transform.function_arn}:*",
    ]
  }

  statement {
    sid       = "LocateZoneBucket"
    actions   = ["s3:GetBucketLocation", "s3:ListBucket", "s3:ListBucketMultipartUploads"]
    resources = [var.bucket_arn]
  }

  statement {
    sid       = "WriteZonePrefixes"
    actions   = ["s3:AbortMultipartUpload", "s3:GetObject", "s3:PutObject"]
    resources = [for prefix in local.write_prefixes : "${var.bucket_arn}/${prefix}*"]
  }

  statement {
    sid       = "EncryptZoneObjects"
    actions   = ["kms:GenerateDataKey", "kms:Decrypt"]
    resources = [var.kms_key_arn]
    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["s3.${local.region}.amazonaws.com"]
    }
  }

  statement {
    sid       = "WriteOwnLogGroup"
    actions   = ["logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.firehose.arn}:*"]
  }
}

resource "aws_iam_role_policy" "firehose" {
  name   = "deliver"
  role   = aws_iam_role.firehose.id
  policy = data.aws_iam_policy_document.firehose.json
}

resource "aws_cloudwatch_log_group" "firehose" {
  name              = "/sluice/${var.name}/firehose"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
  tags              = var.tags
}

resource "aws_cloudwatch_log_stream" "delivery" {
  for_each = var.stream_names

  name           = "S3Delivery-${each.key}"
  log_group_name = aws_cloudwatch_log_group.firehose.name
}

resource "aws_cloudwatch_log_stream" "backup" {
  for_each = var.raw_backup_enabled ? var.stream_names : {}

  name           = "RawBackup-${each.key}"
  log_group_name = aws_cloudwatch_log_group.firehose.name
}

# --- Delivery streams ----------------------------------------------------------------

resource "aws_kinesis_firehose_delivery_stream" "this" {
  #checkov:skip=CKV_AWS_240:Server-side encryption of a delivery stream applies to Direct PUT only; the source stream (Kinesis with KMS, or MSK with KMS) encrypts the records.
  #checkov:skip=CKV_AWS_241:Same as CKV_AWS_240; the S3 destination is encrypted with the customer managed key (kms_key_arn below).
  for_each = var.stream_names

  name        = "${var.name}-${each.key}"
  destination = "extended_s3"
  tags        = merge(var.tags, { EventType = each.key })

  lifecycle {
    precondition {
      condition     = !(var.raw_backup_enabled && local.is_kafka)
      error_message = "raw_backup_enabled needs a Kinesis source: Firehose backs up source records only for Direct PUT and Kinesis Data Streams sources, not MSK. Set raw_backup_enabled = false with the kafka backend (the topic's retention keeps the raw records)."
    }
  }

  dynamic "kinesis_source_configuration" {
    for_each = local.is_kafka ? [] : [1]
    content {
      kinesis_stream_arn = var.kinesis_stream_arns[each.key]
      role_arn           = aws_iam_role.firehose.arn
    }
  }

  dynamic "msk_source_configuration" {
    for_each = local.is_kafka ? [1] : []
    content {
      msk_cluster_arn = var.kafka_cluster_arn
      topic_name      = each.value

      authentication_configuration {
        connectivity = "PRIVATE"
        role_arn     = aws_iam_role.firehose.arn
      }
    }
  }

  extended_s3_configuration {
    role_arn            = aws_iam_role.firehose.arn
    bucket_arn          = var.bucket_arn
    prefix              = "${var.clean_prefix}event_type=!{partitionKeyFromLambda:event_type}/dt=!{partitionKeyFromLambda:dt}/"
    error_output_prefix = "${var.error_prefix}!{firehose:error-output-type}/!{timestamp:yyyy/MM/dd/HH}/"
    buffering_size      = var.buffering_size_mb
    buffering_interval  = var.buffering_interval_seconds
    compression_format  = "GZIP"
    kms_key_arn         = var.kms_key_arn
    s3_backup_mode      = var.raw_backup_enabled ? "Enabled" : "Disabled"

    # The transform returns metadata.partitionKeys {event_type, dt} for every Ok record
    # (dt is the record's arrival date), which the prefix above uses.
    dynamic_partitioning_configuration {
      enabled        = true
      retry_duration = var.partitioning_retry_seconds
    }

    cloudwatch_logging_options {
      enabled         = true
      log_group_name  = aws_cloudwatch_log_group.firehose.name
      log_stream_name = aws_cloudwatch_log_stream.delivery[each.key].name
    }

    processing_configuration {
      enabled = true

      processors {
        type = "Lambda"

        parameters {
          parameter_name  = "LambdaArn"
          parameter_value = "${module.transform.function_arn}:$LATEST"
        }
        parameters {
          parameter_name  = "BufferSizeInMBs"
          parameter_value = tostring(var.transform_buffer_size_mb)
        }
        parameters {
          parameter_name  = "BufferIntervalInSeconds"
          parameter_value = tostring(var.transform_buffer_interval_seconds)
        }
        parameters {
          parameter_name  = "NumberOfRetries"
          parameter_value = tostring(var.transform_retries)
        }
      }
    }

    dynamic "s3_backup_configuration" {
      for_each = var.raw_backup_enabled ? [1] : []
      content {
        role_arn            = aws_iam_role.firehose.arn
        bucket_arn          = var.bucket_arn
        prefix              = "${var.raw_prefix}!{timestamp:yyyy/MM/dd/HH}/"
        error_output_prefix = "${var.error_prefix}raw-backup-failed/!{timestamp:yyyy/MM/dd/HH}/"
        buffering_size      = var.buffering_size_mb
        buffering_interval  = var.buffering_interval_seconds
        compression_format  = "GZIP"
        kms_key_arn         = var.kms_key_arn

        cloudwatch_logging_options {
          enabled         = true
          log_group_name  = aws_cloudwatch_log_group.firehose.name
          log_stream_name = aws_cloudwatch_log_stream.backup[each.key].name
        }
      }
    }
  }

  depends_on = [aws_iam_role_policy.firehose]
}
