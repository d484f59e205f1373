# Alarms of the whole path, all sent to one SNS topic, and one dashboard. Consumer lag
# and dead letters are watched twice: through the custom metrics the consumers emit as
# CloudWatch embedded metric format (namespace and names in var.custom_metrics, kept in
# one place so they can be aligned with the code), and through what AWS measures itself
# (MSK consumer-group lag, Kinesis iterator age, records arriving on the DLQ). Metrics
# Insights queries aggregate over every group, stream and partition, whatever
# dimensions the records carry.

data "aws_caller_identity" "current" {}
data "aws_region" "current" {}

locals {
  metrics    = var.custom_metrics
  is_kinesis = var.backend == "kinesis"
  is_kafka   = var.backend == "kafka"
  actions    = [aws_sns_topic.alarms.arn]
  kafka_lag  = "SCHEMA(\"AWS/Kafka\", \"Cluster Name\", \"Consumer Group\", Topic) WHERE \"Cluster Name\" = '${coalesce(var.msk_cluster_name, "-")}'"
  insights = {
    lag_records       = "SELECT MAX(\"${local.metrics.consumer_lag_records}\") FROM \"${local.metrics.namespace}\""
    lag_seconds       = "SELECT MAX(\"${local.metrics.consumer_lag_seconds}\") FROM \"${local.metrics.namespace}\""
    dlq_records       = "SELECT SUM(\"${local.metrics.dlq_records}\") FROM \"${local.metrics.namespace}\""
    consumer_records  = "SELECT SUM(\"${local.metrics.consumer_records}\") FROM \"${local.metrics.namespace}\""
    kafka_offset_lag  = "SELECT MAX(MaxOffsetLag) FROM ${local.kafka_lag}"
    kafka_time_lag    = "SELECT MAX(EstimatedMaxTimeLag) FROM ${local.kafka_lag}"
    kafka_dlq_records = "SELECT SUM(MessagesInPerSec) FROM SCHEMA(\"AWS/Kafka\", \"Broker ID\", \"Cluster Name\", Topic) WHERE \"Cluster Name\" = '${coalesce(var.msk_cluster_name, "-")}' AND Topic = '${var.dlq_name}'"
  }
}

# --- Topic ---------------------------------------------------------------------------

resource "aws_sns_topic" "alarms" {
  name              = "${var.name}-sluice-alarms"
  kms_master_key_id = var.kms_key_arn
  tags              = var.tags
}

data "aws_iam_policy_document" "alarms_topic" {
  statement {
    sid       = "CloudWatchAlarmsPublish"
    actions   = ["sns:Publish"]
    resources = [aws_sns_topic.alarms.arn]
    principals {
      type        = "Service"
      identifiers = ["cloudwatch.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [data.aws_caller_identity.current.account_id]
    }
  }
}

resource "aws_sns_topic_policy" "alarms" {
  arn    = aws_sns_topic.alarms.arn
  policy = data.aws_iam_policy_document.alarms_topic.json
}

resource "aws_sns_topic_subscription" "email" {
  for_each = toset(var.alarm_emails)

  topic_arn = aws_sns_topic.alarms.arn
  protocol  = "email"
  endpoint  = each.value
}

# --- Consumers (custom metrics) ------------------------------------------------------

resource "aws_cloudwatch_metric_alarm" "consumer_lag_records" {
  alarm_name          = "${var.name}-consumer-lag-records"
  alarm_description   = "A consumer group is more than ${var.thresholds.consumer_lag_records} records behind. Runbook: docs/runbooks/consumer-lag.md"
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.thresholds.consumer_lag_records
  evaluation_periods  = var.evaluation_periods
  datapoints_to_alarm = var.evaluation_periods
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.actions
  ok_actions          = local.actions
  tags                = var.tags

  metric_query {
    id          = "lag"
    expression  = local.insights.lag_records
    period      = 60
    return_data = true
  }
}

resource "aws_cloudwatch_metric_alarm" "consumer_lag_seconds" {
  alarm_name          = "${var.name}-consumer-lag-seconds"
  alarm_description   = "A consumer group is more than ${var.thresholds.consumer_lag_seconds} s behind. Runbook: docs/runbooks/consumer-lag.md"
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.thresholds.consumer_lag_seconds
  evaluation_periods  = var.evaluation_periods
  datapoints_to_alarm = var.evaluation_periods
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.actions
  ok_actions          = local.actions
  tags                = var.tags

  metric_query {
    id          = "lag"
    expression  = local.insights.lag_seconds
    period      = 60
    return_data = true
  }
}

resource "aws_cloudwatch_metric_alarm" "dlq_records" {
  alarm_name          = "${var.name}-dlq-not-empty"
  alarm_description   = "Records were written to the dead-letter stream. Runbook: docs/runbooks/dlq-not-empty.md"
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  evaluation_periods  = 1
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.actions
  ok_actions          = local.actions
  tags                = var.tags

  metric_query {
    id          = "dlq"
    expression  = local.insights.dlq_records
    period      = 300
    return_data = true
  }
}

resource "aws_cloudwatch_metric_alarm" "dlq_stream_incoming" {
  count = local.is_kinesis ? 1 : 0

  alarm_name          = "${var.name}-dlq-stream-incoming"
  alarm_description   = "The dead-letter Kinesis stream received records. Runbook: docs/runbooks/dlq-not-empty.md"
  namespace           = "AWS/Kinesis"
  metric_name         = "IncomingRecords"
  dimensions          = { StreamName = var.dlq_kinesis_stream_name }
  statistic           = "Sum"
  period              = 300
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  evaluation_periods  = 1
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.actions
  ok_actions          = local.actions
  tags                = var.tags
}

resource "aws_cloudwatch_metric_alarm" "dlq_topic_incoming" {
  count = local.is_kafka ? 1 : 0

  alarm_name          = "${var.name}-dlq-topic-incoming"
  alarm_description   = "The dead-letter topic ${var.dlq_name} received records. Runbook: docs/runbooks/dlq-not-empty.md"
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  evaluation_periods  = 1
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.actions
  ok_actions          = local.actions
  tags                = var.tags

  metric_query {
    id          = "dlq"
    expression  = local.insights.kafka_dlq_records
    period      = 300
    return_data = true
  }
}

# Objects written under the zone's error prefix: records the transform marked
# ProcessingFailed, or batches Firehose could not transform or deliver.
resource "aws_cloudwatch_metric_alarm" "processing_failed_objects" {
  alarm_name          = "${var.name}-processing-failed-objects"
  alarm_description   = "Firehose wrote failed records under the error prefix of ${var.zone_bucket_name}. Runbook: docs/runbooks/firehose-processing-failures.md"
  namespace           = "AWS/S3"
  metric_name         = "PutRequests"
  dimensions          = { BucketName = var.zone_bucket_name, FilterId = var.error_metrics_filter_id }
  statistic           = "Sum"
  period              = 300
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  evaluation_periods  = 1
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.actions
  ok_actions          = local.actions
  tags                = var.tags
}

# MSK measures the lag of every consumer group that commits offsets.
resource "aws_cloudwatch_metric_alarm" "kafka_offset_lag" {
  count = local.is_kafka ? 1 : 0

  alarm_name          = "${var.name}-kafka-offset-lag"
  alarm_description   = "A consumer group on MSK is more than ${var.thresholds.consumer_lag_records} records behind on a partition. Runbook: docs/runbooks/consumer-lag.md"
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.thresholds.consumer_lag_records
  evaluation_periods  = var.evaluation_periods
  datapoints_to_alarm = var.evaluation_periods
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.actions
  ok_actions          = local.actions
  tags                = var.tags

  metric_query {
    id          = "lag"
    expression  = local.insights.kafka_offset_lag
    period      = 60
    return_data = true
  }
}

resource "aws_cloudwatch_metric_alarm" "kafka_time_lag" {
  count = local.is_kafka ? 1 : 0

  alarm_name          = "${var.name}-kafka-time-lag"
  alarm_description   = "A consumer group on MSK is an estimated ${var.thresholds.consumer_lag_seconds} s behind. Runbook: docs/runbooks/consumer-lag.md"
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.thresholds.consumer_lag_seconds
  evaluation_periods  = var.evaluation_periods
  datapoints_to_alarm = var.evaluation_periods
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.actions
  ok_actions          = local.actions
  tags                = var.tags

  metric_query {
    id          = "lag"
    expression  = local.insights.kafka_time_lag
    period      = 60
    return_data = true
  }
}

# --- Streams -------------------------------------------------------------------------

resource "aws_cloudwatch_metric_alarm" "iterator_age" {
  for_each = local.is_kinesis ? var.kinesis_stream_names : {}

  alarm_name          = "${var.name}-${each.key}-iterator-age"
  alarm_description   = "Readers of ${each.value} are more than ${var.thresholds.iterator_age_ms} ms behind. Runbook: docs/runbooks/consumer-lag.md"
  namespace           = "AWS/Kinesis"
  metric_name         = "GetRecords.IteratorAgeMilliseconds"
  dimensions          = { StreamName = each.value }
  statistic           = "Maximum"
  period              = 60
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.thresholds.iterator_age_ms
  evaluation_periods  = var.evaluation_periods
  datapoints_to_alarm = var.evaluation_periods
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.actions
  ok_actions          = local.actions
  tags                = var.tags
}

# --- Firehose ------------------------------------------------------------------------

resource "aws_cloudwatch_metric_alarm" "firehose_delivery" {
  for_each = var.delivery_stream_names

  alarm_name          = "${var.name}-${each.key}-firehose-delivery"
  alarm_description   = "Firehose ${each.value} failed to deliver to S3. Runbook: docs/runbooks/firehose-processing-failures.md"
  namespace           = "AWS/Firehose"
  metric_name         = "DeliveryToS3.Success"
  dimensions          = { DeliveryStreamName = each.value }
  statistic           = "Minimum"
  period              = 300
  comparison_operator = "LessThanThreshold"
  threshold           = 1
  evaluation_periods  = 1
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.actions
  ok_actions          = local.actions
  tags                = var.tags
}

resource "aws_cloudwatch_metric_alarm" "firehose_transform" {
  for_each = var.delivery_stream_names

  alarm_name          = "${var.name}-${each.key}-firehose-transform"
  alarm_description   = "Firehose ${each.value} failed to invoke the transform. Runbook: docs/runbooks/firehose-processing-failures.md"
  namespace           = "AWS/Firehose"
  metric_name         = "ExecuteProcessing.Success"
  dimensions          = { DeliveryStreamName = each.value }
  statistic           = "Minimum"
  period              = 300
  comparison_operator = "LessThanThreshold"
  threshold           = 1
  evaluation_periods  = 1
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.actions
  ok_actions          = local.actions
  tags                = var.tags
}

resource "aws_cloudwatch_metric_alarm" "firehose_freshness" {
  for_each = var.delivery_stream_names

  alarm_name          = "${var.name}-${each.key}-firehose-freshness"
  alarm_description   = "The oldest record in Firehose ${each.value} is older than ${var.thresholds.firehose_freshness_seconds} s. Runbook: docs/runbooks/firehose-processing-failures.md"
  namespace           = "AWS/Firehose"
  metric_name         = "DeliveryToS3.DataFreshness"
  dimensions          = { DeliveryStreamName = each.value }
  statistic           = "Maximum"
  period              = 300
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.thresholds.firehose_freshness_seconds
  evaluation_periods  = var.evaluation_periods
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.actions
  ok_actions          = local.actions
  tags                = var.tags
}

# --- API -----------------------------------------------------------------------------

resource "aws_cloudwatch_metric_alarm" "api_5xx" {
  alarm_name          = "${var.name}-api-5xx"
  alarm_description   = "The ingest API answered more than ${var.thresholds.api_5xx} 5xx in 5 minutes. Runbook: docs/runbooks/api-errors.md"
  namespace           = "AWS/ApiGateway"
  metric_name         = "5xx"
  dimensions          = { ApiId = var.api_id, Stage = var.api_stage }
  statistic           = "Sum"
  period              = 300
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.thresholds.api_5xx
  evaluation_periods  = 1
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.actions
  ok_actions          = local.actions
  tags                = var.tags
}

# HTTP APIs publish no throttle count: stage throttling answers 429, counted in 4xx.
resource "aws_cloudwatch_metric_alarm" "api_4xx" {
  alarm_name          = "${var.name}-api-4xx-rate"
  alarm_description   = "More than ${var.thresholds.api_4xx_percent}% of API requests got a 4xx (stage throttling answers 429). Runbook: docs/runbooks/api-errors.md"
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.thresholds.api_4xx_percent
  evaluation_periods  = var.evaluation_periods
  datapoints_to_alarm = var.evaluation_periods
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.actions
  ok_actions          = local.actions
  tags                = var.tags

  metric_query {
    id          = "rate"
    expression  = "IF(requests > 0, 100 * errors / requests, 0)"
    label       = "4xx percent"
    return_data = true
  }

  metric_query {
    id = "errors"
    metric {
      namespace   = "AWS/ApiGateway"
      metric_name = "4xx"
      dimensions  = { ApiId = var.api_id, Stage = var.api_stage }
      stat        = "Sum"
      period      = 300
    }
  }

  metric_query {
    id = "requests"
    metric {
      namespace   = "AWS/ApiGateway"
      metric_name = "Count"
      dimensions  = { ApiId = var.api_id, Stage = var.api_stage }
      stat        = "Sum"
      period      = 300
    }
  }
}

# --- Functions -----------------------------------------------------------------------

resource "aws_cloudwatch_metric_alarm" "function_errors" {
  for_each = var.function_names

  alarm_name          = "${var.name}-${each.key}-function-errors"
  alarm_description   = "The ${each.value} function failed invocations. Runbook: docs/runbooks/README.md"
  namespace           = "AWS/Lambda"
  metric_name         = "Errors"
  dimensions          = { FunctionName = each.value }
  statistic           = "Sum"
  period              = 300
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  evaluation_periods  = 1
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.actions
  ok_actions          = local.actions
  tags                = var.tags
}

resource "aws_cloudwatch_metric_alarm" "function_throttles" {
  for_each = var.function_names

  alarm_name          = "${var.name}-${each.key}-function-throttles"
  alarm_description   = "The ${each.value} function was throttled (reserved concurrency reached). Runbook: docs/runbooks/api-errors.md"
  namespace           = "AWS/Lambda"
  metric_name         = "Throttles"
  dimensions          = { FunctionName = each.value }
  statistic           = "Sum"
  period              = 300
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  evaluation_periods  = 1
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.actions
  ok_actions          = local.actions
  tags                = var.tags
}

resource "aws_cloudwatch_metric_alarm" "loader_dlq" {
  alarm_name          = "${var.name}-loader-dlq-not-empty"
  alarm_description   = "S3 events the loader could not process are waiting in ${var.loader_dlq_name}. Runbook: docs/runbooks/dlq-not-empty.md"
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateNumberOfMessagesVisible"
  dimensions          = { QueueName = var.loader_dlq_name }
  statistic           = "Maximum"
  period              = 300
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  evaluation_periods  = 1
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.actions
  ok_actions          = local.actions
  tags                = var.tags
}

# --- Workers (ECS) -------------------------------------------------------------------

resource "aws_cloudwatch_metric_alarm" "worker_not_running" {
  for_each = var.worker_service_names

  alarm_name          = "${var.name}-worker-${each.key}-not-running"
  alarm_description   = "The ECS service ${each.value} has no running task. Runbook: docs/runbooks/consumer-lag.md"
  namespace           = "ECS/ContainerInsights"
  metric_name         = "RunningTaskCount"
  dimensions          = { ClusterName = var.workers_cluster_name, ServiceName = each.value }
  statistic           = "Minimum"
  period              = 60
  comparison_operator = "LessThanThreshold"
  threshold           = 1
  evaluation_periods  = var.evaluation_periods
  datapoints_to_alarm = var.evaluation_periods
  # No data from Container Insights for a service that should run is itself a failure.
  treat_missing_data = "breaching"
  alarm_actions      = local.actions
  ok_actions         = local.actions
  tags               = var.tags
}

# --- Dashboard -----------------------------------------------------------------------

resource "aws_cloudwatch_dashboard" "this" {
  dashboard_name = "${var.name}-sluice"
  dashboard_body = jsonencode({
    widgets = concat(
      [
        {
          type = "metric", x = 0, y = 0, width = 12, height = 6
          properties = {
            title   = "Consumer lag (records)"
            region  = data.aws_region.current.name
            metrics = [[{ expression = local.insights.lag_records, id = "lag", period = 60 }]]
          }
        },
        {
          type = "metric", x = 12, y = 0, width = 12, height = 6
          properties = {
            title   = "Consumer lag (seconds)"
            region  = data.aws_region.current.name
            metrics = [[{ expression = local.insights.lag_seconds, id = "lag", period = 60 }]]
          }
        },
        {
          type = "metric", x = 0, y = 6, width = 12, height = 6
          properties = {
            title  = "Dead letters and objects under the error prefix"
            region = data.aws_region.current.name
            metrics = [
              [{ expression = local.insights.dlq_records, id = "dlq", period = 300 }],
              ["AWS/S3", "PutRequests", "BucketName", var.zone_bucket_name, "FilterId", var.error_metrics_filter_id, { stat = "Sum", period = 300 }],
            ]
          }
        },
        {
          type = "metric", x = 12, y = 6, width = 12, height = 6
          properties = {
            title  = "Ingest API"
            region = data.aws_region.current.name
            stat   = "Sum"
            metrics = [
              ["AWS/ApiGateway", "Count", "ApiId", var.api_id, "Stage", var.api_stage],
              ["AWS/ApiGateway", "4xx", "ApiId", var.api_id, "Stage", var.api_stage],
              ["AWS/ApiGateway", "5xx", "ApiId", var.api_id, "Stage", var.api_stage],
            ]
          }
        },
      ],
      [
        {
          type = "metric", x = 0, y = 12, width = 24, height = 6
          properties = {
            title  = "Firehose delivery and transform"
            region = data.aws_region.current.name
            stat   = "Average"
            metrics = concat(
              [for stream in values(var.delivery_stream_names) : ["AWS/Firehose", "DeliveryToS3.Success", "DeliveryStreamName", stream]],
              [for stream in values(var.delivery_stream_names) : ["AWS/Firehose", "ExecuteProcessing.Success", "DeliveryStreamName", stream]],
              [for stream in values(var.delivery_stream_names) : ["AWS/Firehose", "DeliveryToS3.DataFreshness", "DeliveryStreamName", stream, { stat = "Maximum", yAxis = "right" }]],
            )
          }
        },
      ],
      [
        {
          type = "metric", x = 0, y = 24, width = 12, height = 6
          properties = {
            title  = "Functions: errors and throttles"
            region = data.aws_region.current.name
            stat   = "Sum"
            metrics = concat(
              [for fn in values(var.function_names) : ["AWS/Lambda", "Errors", "FunctionName", fn]],
              [for fn in values(var.function_names) : ["AWS/Lambda", "Throttles", "FunctionName", fn]],
            )
          }
        },
        {
          type = "metric", x = 12, y = 24, width = 12, height = 6
          properties = {
            title  = "Loader DLQ and consumer throughput"
            region = data.aws_region.current.name
            metrics = [
              ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", var.loader_dlq_name, { stat = "Maximum" }],
              [{ expression = local.insights.consumer_records, id = "records", period = 60, yAxis = "right" }],
            ]
          }
        },
      ],
      local.is_kafka ? [
        {
          type = "metric", x = 0, y = 18, width = 24, height = 6
          properties = {
            title  = "MSK consumer group lag"
            region = data.aws_region.current.name
            metrics = [
              [{ expression = local.insights.kafka_offset_lag, id = "offsets", period = 60 }],
              [{ expression = local.insights.kafka_time_lag, id = "seconds", period = 60, yAxis = "right" }],
            ]
          }
        },
      ] : [],
      local.is_kinesis ? [
        {
          type = "metric", x = 0, y = 18, width = 24, height = 6
          properties = {
            title   = "Kinesis iterator age (ms)"
            region  = data.aws_region.current.name
            stat    = "Maximum"
            metrics = [for stream in values(var.kinesis_stream_names) : ["AWS/Kinesis", "GetRecords.IteratorAgeMilliseconds", "StreamName", stream]]
          }
        },
      ] : [],
    )
  })
}
